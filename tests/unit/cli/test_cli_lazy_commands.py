"""Each run registers only the command it names, so `ps` or `up` pays for nothing else."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from llama_orchestrator.cli import COMMAND_MODULES, build_app, command_of


def names(app: typer.Typer) -> set[str]:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    return set(group.commands)


def test_the_table_names_every_command_the_full_cli_has() -> None:
    assert names(build_app()) == set(COMMAND_MODULES)


def test_one_command_brings_only_its_module() -> None:
    assert names(build_app("ps")) == {c for c, m in COMMAND_MODULES.items() if m == "lifecycle"}
    assert names(build_app("service")) == {"service"}


@pytest.mark.parametrize(("args", "command"), [
    (["ps"], "ps"),
    (["--home", "/x", "up", "a"], "up"),
    (["--home=/x", "--debug", "logs", "-f", "a"], "logs"),
    (["--home", "ps"], None),  # "ps" is the home here, and no command follows
    (["--help"], None),
    (["--version", "ps"], None),
    (["pss"], None),  # a typo: the whole CLI, so the error can list every command
    ([], None),
])
def test_the_command_is_found_past_the_global_options(args: list[str], command: str | None) -> None:
    assert command_of(args) == command


def test_ps_does_not_import_the_service_renderers_or_the_config_tools() -> None:
    code = ("import sys; from llama_orchestrator.cli import build_app; build_app('ps'); "
            "print(sorted(m for m in ('llama_orchestrator.autostart', 'llama_orchestrator.cli.config_cmd') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
