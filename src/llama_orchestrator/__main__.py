"""`python -m llama_orchestrator` runs the same CLI as `llama-orch`."""

from __future__ import annotations

from llama_orchestrator.cli import main

if __name__ == "__main__":
    main()
