"""The fetched models on disk (llama_orchestrator.hub.local): listing, naming by spec, forgetting."""

from __future__ import annotations

from pathlib import Path

from llama_orchestrator.hub.choice import HubModel
from llama_orchestrator.hub.local import forget, local_models, named


def put(path: Path, data: bytes = b"GGUF") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_listing_naming_and_forgetting_leave_the_users_own_files(tmp_path: Path) -> None:
    models = tmp_path / "models"
    repo = models / "o" / "r"
    put(repo / "r-Q8_0.gguf", b"GGUF8")
    put(repo / "big" / "r-F16-00001-of-00002.gguf")
    put(repo / "big" / "r-F16-00002-of-00002.gguf")
    put(repo / ".cache" / "huggingface" / "download" / "r-Q8_0.gguf.metadata", b"notes")
    put(repo / "notes.txt", b"mine")
    found = local_models(models)
    assert [(m.repo, m.file, m.bytes) for m in found] == [
        ("o/r", "big/r-F16-00001-of-00002.gguf", 4), ("o/r", "big/r-F16-00002-of-00002.gguf", 4),
        ("o/r", "r-Q8_0.gguf", 5)]
    assert [m.file for m in named(found, HubModel("o/r", "f16"))] == [m.file for m in found[:2]]
    assert named(found, HubModel("x/y", "Q8_0")) == []
    for m in named(found, HubModel("o/r", "F16")):
        forget(models, m)
    assert not (repo / "big").exists() and (repo / "r-Q8_0.gguf").exists()  # an emptied folder goes
    [q8] = named(local_models(models), HubModel("o/r", "Q8_0"))
    forget(models, q8)
    assert not (repo / ".cache").exists() and (repo / "notes.txt").read_bytes() == b"mine"
    assert local_models(models) == []
