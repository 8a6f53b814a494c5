"""`create --embeddings` and `rm` of several names, as a user runs them (no daemon runs: `rm`
works on the files alone)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.support.server_help import help_only_binary
from typer.testing import CliRunner

from llama_orchestrator.cli import build_app

runner = CliRunner()


def cli(home: Path, *args: str):  # typer's Result (click's, or its vendored copy)
    return runner.invoke(build_app(), ["--home", str(home), *args], catch_exceptions=False)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    return path


def test_create_embeddings_makes_an_embedding_instance_without_a_chat_template_warning(
    home: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLAMA_ORCH_LLAMA_SERVER", str(help_only_binary(tmp_path)))  # --embeddings is checked
    assert "--embeddings" in cli(home, "create", "--help").stdout
    result = cli(home, "create", "embed", "--model", str(tiny_model), "--embeddings", "--", "--pooling", "mean")
    assert result.exit_code == 2, result.output  # --pooling is not in this --help: the check ran
    result = cli(home, "create", "embed", "--model", str(tiny_model), "--embeddings")
    assert result.exit_code == 0, result.output
    assert "chat template" not in result.output  # the model holds none, but an embedding model formats no chats
    assert json.loads((home / "instances/embed/config.json").read_text())["model"]["embeddings"] is True
    argv = json.loads(cli(home, "config", "render", "embed", "--json").stdout)["argv"]
    assert "--embeddings" in argv, argv
    chat = cli(home, "create", "chat", "--model", str(tiny_model))
    assert "embeddings" not in json.loads((home / "instances/chat/config.json").read_text())["model"]
    assert "chat template" in chat.output


def test_rm_takes_several_names_and_removes_none_when_one_is_unknown(home: Path, model: Path) -> None:
    for name in ("g1", "g2", "g3"):
        assert cli(home, "create", name, "--model", str(model), "--no-check").exit_code == 0
    (home / "logs").mkdir(exist_ok=True)
    for name in ("g1", "g2", "g3"):
        (home / f"logs/{name}.log").write_text("x")

    refused = cli(home, "rm", "-y", "g1", "ghost", "g2", "../g3")
    assert refused.exit_code == 4, refused.output
    assert "no instances named 'ghost', '../g3'" in refused.output
    assert "nothing was removed; known instances: g1, g2, g3" in refused.output
    assert all((home / f"instances/{n}/config.json").exists() for n in ("g1", "g2", "g3"))
    one = cli(home, "rm", "-y", "ghost")
    assert one.exit_code == 4 and "no instance named 'ghost'" in one.output, one.output
    assert "nothing was removed" not in one.output  # one name: plain

    refused = cli(home, "rm", "g1", "g2")  # no terminal, no -y: refuse, remove nothing
    assert refused.exit_code == 2 and "refusing to remove 'g1', 'g2' without confirmation" in refused.output
    removed = cli(home, "rm", "-y", "g1", "g2", "g1")
    assert removed.exit_code == 0, removed.output
    assert removed.stdout.splitlines() == ["✓ removed g1", "✓ removed g2"]
    assert not (home / "instances/g1").exists() and not (home / "instances/g2").exists()
    assert not (home / "logs/g1.log").exists() and not (home / "logs/g2.log").exists()
    assert (home / "instances/g3/config.json").exists() and (home / "logs/g3.log").exists()
