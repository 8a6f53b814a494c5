"""llama-orchestrator: a control plane for several llama.cpp llama-server processes on one machine."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
