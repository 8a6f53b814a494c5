"""What `events NAME`, `daemon status --json` and `rm --help` answer with no daemon running:
an unknown name is said (exit 4, as `inspect`), a script gets JSON, the help reads as sentences."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from llama_orchestrator.cli import build_app
from llama_orchestrator.config.paths import HomePaths
from llama_orchestrator.store import Store

runner = CliRunner()


def cli(home: Path, *args: str, columns: int = 80) -> Result:
    return runner.invoke(build_app(), ["--home", str(home), *args], catch_exceptions=False,
                         env={"COLUMNS": str(columns)})


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.mark.parametrize("tail", ["100", "0"])
def test_events_of_an_unknown_name_says_so_as_inspect_does(home: Path, tmp_path: Path, tail: str) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    assert cli(home, "create", "known", "--model", str(model), "--no-check").exit_code == 0
    store = Store.open(HomePaths(home).state_db)  # the history of an instance removed since
    store.record_transition("gone", None, "starting", "user", 1.0)
    store.close()

    for args in (("events", "nope"), ("inspect", "nope")):
        result = cli(home, *args, "-n" if args[0] == "events" else "--json", *([tail] if args[0] == "events" else []))
        assert result.exit_code == 4, result.output
        assert "no instance named 'nope'" in result.output and "known instances: known" in result.output
    quiet = cli(home, "events", "known", "-n", tail)  # a config, no history yet: nothing to show
    assert quiet.exit_code == 0 and quiet.stdout == "", quiet.output
    removed = cli(home, "events", "gone", "-n", tail, "--json")
    assert removed.exit_code == 0, removed.output
    assert [json.loads(line)["instance"] for line in removed.stdout.splitlines()] == (["gone"] if tail != "0" else [])
    assert cli(home, "events", "-n", tail).exit_code == 0  # every instance's: no name to know


def test_daemon_status_json_says_not_running_on_stdout(home: Path) -> None:
    result = cli(home, "daemon", "status", "--json")
    assert result.exit_code == 3, result.output  # the README's "daemon unreachable"
    assert json.loads(result.stdout) == {"running": False, "home": str(home)}
    assert "no daemon is running" in result.stderr
    plain = cli(home, "daemon", "status")
    assert plain.exit_code == 3 and plain.stdout == "", plain.output


def test_rm_help_reads_as_whole_sentences(home: Path) -> None:
    text = cli(home, "rm", "--help").stdout
    description = text.split("Usage:", 1)[1].split("╭", 1)[0].splitlines()[1:]
    lines = [line.strip() for line in description if line.strip()]
    assert len(lines) >= 3, text
    assert all(line.endswith(".") or line.startswith("Example:") for line in lines), lines  # none cut mid-sentence
    assert "If any name is unknown, nothing is removed." in lines
    assert any("stopped first" in line for line in lines)
