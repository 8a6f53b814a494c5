"""What the commands that only look say about a home that is not there, a new empty one, and an
instance whose config file is broken; and `daemon stop`'s hint when none runs (no daemon here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from llama_orchestrator.cli import build_app

runner = CliRunner()


def cli(home: Path, *args: str) -> Result:
    return runner.invoke(build_app(), ["--home", str(home), *args], catch_exceptions=False,
                         env={"COLUMNS": "200"})


@pytest.mark.parametrize("args", [("ps",), ("ps", "-a"), ("ls",), ("inspect", "x"), ("logs", "x"), ("events",)])
def test_a_home_that_does_not_exist_is_said_and_not_made(tmp_path: Path, args: tuple[str, ...]) -> None:
    typo = tmp_path / "typo"
    result = cli(typo, *args)
    assert result.exit_code == 7, result.output  # the README's "home directory not usable"
    assert f"home {typo} does not exist (chosen by --home)" in result.stderr
    assert "LLAMA_ORCH_HOME" in result.stderr and "shown as the last one left it" not in result.stderr
    assert not typo.exists()


def test_a_new_empty_home_and_an_unknown_name_get_no_daemon_warning(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    ps = cli(home, "ps")
    assert ps.exit_code == 0 and "no daemon is running" not in ps.stderr, ps.output
    (home / "instances" / "known").mkdir(parents=True)
    (home / "instances" / "known" / "config.json").write_text(json.dumps({"model": {"path": "/m.gguf"}}))
    unknown = cli(home, "inspect", "nope")
    assert unknown.exit_code == 4 and "no daemon is running" not in unknown.stderr, unknown.output
    assert "no daemon is running" in cli(home, "ps").stderr  # something to show: said


def test_ps_without_a_daemon_shows_an_instance_whose_config_is_broken(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "instances" / "tiny").mkdir(parents=True)
    (home / "instances" / "tiny" / "config.json").write_text('{"name": "tiny",\n')
    ps = cli(home, "ps", "-a")
    assert ps.exit_code == 0, ps.output
    row = next(line.split() for line in ps.stdout.splitlines() if line.startswith("tiny"))
    assert row[:4] == ["tiny", "stopped*", "-", "-"], ps.stdout
    assert "* config invalid: `llama-orch config validate` says why" in " ".join(ps.stdout.split())
    listed = json.loads(cli(home, "ps", "-a", "--json").stdout)["instances"]
    assert [(s["name"], s["changed"][:15]) for s in listed] == [("tiny", "config invalid:")]


def test_daemon_stop_with_none_running_says_nothing_to_stop(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    result = cli(home, "daemon", "stop")
    assert result.exit_code == 3, result.output
    assert "nothing to stop" in result.stderr and "daemon start" not in result.stderr, result.stderr


def test_the_default_home_not_made_yet_is_an_empty_fleet(tmp_path: Path) -> None:
    """A first `ps` before any `create` (the default home, not named by anyone) lists nothing, as
    `docker ps` on a new install; only a home someone named and mistyped is an error."""
    xdg = tmp_path / "xdg"
    result = runner.invoke(build_app(), ["ps"], catch_exceptions=False,
                           env={"COLUMNS": "200", "XDG_DATA_HOME": str(xdg), "LLAMA_ORCH_HOME": None})
    assert result.exit_code == 0, result.output
    assert "does not exist" not in result.stderr and not xdg.exists()
