"""Shell completion for bash, zsh, fish and PowerShell comes from Typer when add_completion=True."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from llama_orchestrator.cli.service import service_app


def _app() -> typer.Typer:
    app = typer.Typer(add_completion=True)

    @app.callback()
    def root() -> None:
        """llama-orch (test double of the main app)."""

    app.add_typer(service_app, name="service")
    return app


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish", "powershell", "pwsh"])
def test_completion_script_for_each_shell_names_llama_orch(shell: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Without this Typer detects the running shell and ignores the argument.
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    result = CliRunner().invoke(_app(), ["--show-completion", shell], prog_name="llama-orch")
    assert result.exit_code == 0, result.output
    assert "llama-orch" in result.output
    assert "_LLAMA_ORCH_COMPLETE" in result.output


def test_bash_completion_completes_service_subcommands() -> None:
    env = {"_LLAMA_ORCH_COMPLETE": "complete_bash", "COMP_WORDS": "llama-orch service ins", "COMP_CWORD": "2"}
    result = CliRunner().invoke(_app(), [], prog_name="llama-orch", env=env)
    assert result.output.split() == ["install"]


def test_powershell_completion_offers_the_mode_choices() -> None:
    env = {
        "_LLAMA_ORCH_COMPLETE": "complete_powershell",
        "_TYPER_COMPLETE_ARGS": "llama-orch service install --mode ",
        "_TYPER_COMPLETE_WORD_TO_COMPLETE": "",
    }
    result = CliRunner().invoke(_app(), [], prog_name="llama-orch", env=env)
    assert [line.split(":::")[0] for line in result.output.split()] == ["logon", "boot"]


def test_the_main_app_offers_completion_options() -> None:
    from llama_orchestrator.cli import build_app

    result = CliRunner().invoke(build_app(), ["--help"], prog_name="llama-orch")
    assert "--install-completion" in result.output
    assert "--show-completion" in result.output
