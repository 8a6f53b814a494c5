"""Fixtures shared by the integration tests that drive a real daemon through `tests.support.orch.Home`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.orch import Home


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    """The test's orchestrator home (LLAMA_ORCH_HOME); its daemon is always stopped at the end."""
    h = Home(Path(os.environ["LLAMA_ORCH_HOME"]), tmp_path / "scratch")
    try:
        yield h
    finally:
        h.close()


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A file the fake llama-server accepts as a model (it only checks the GGUF magic)."""
    path = tmp_path / "fake.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 64)
    return path
