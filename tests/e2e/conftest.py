"""The end-to-end tier's home: the real llama-server found as a user points at it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.orch import Home


@pytest.fixture
def home(tmp_path: Path, llama_server_bin: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Home]:
    monkeypatch.setenv("LLAMA_ORCH_LLAMA_SERVER", str(llama_server_bin))  # how a user points at the binary
    h = Home(Path(os.environ["LLAMA_ORCH_HOME"]), tmp_path / "scratch")
    try:
        yield h
    finally:
        h.close()
