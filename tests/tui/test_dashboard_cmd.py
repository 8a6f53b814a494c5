"""`llama-orch dashboard` / `top` without Textual installed: an install hint and exit 1."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from llama_orchestrator.cli import build_app


@pytest.mark.parametrize("command", ["dashboard", "top"])
def test_without_textual_it_says_how_to_install_it(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "textual" or m.startswith(("textual.", "llama_orchestrator.tui."))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "textual", None)  # makes `import textual` fail as if not installed
    result = CliRunner().invoke(build_app(), [command])
    assert result.exit_code == 1
    assert "pip install 'llama-orchestrator[tui]'" in result.output
