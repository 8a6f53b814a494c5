"""Writing config files atomically: a crash or a full disk never leaves a half-written config."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from llama_orchestrator.errors import HomeError


def write_text_atomic(path: Path, text: str, *, mode: int | None = None, encoding: str = "utf-8") -> None:
    """Write `text` to a temp file beside `path`, fsync it, then rename it over `path`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise HomeError(f"cannot write {path}: {exc.strerror or exc}") from exc


def write_json_atomic(path: Path, data: Any, *, mode: int | None = None) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n", mode=mode)
