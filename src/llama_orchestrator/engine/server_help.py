"""Ask a llama-server binary which flags it knows (`--help`), once per build of it.

Each file is asked once per process and remembered by its path, size and modification time, so a
rebuilt binary is asked again. A binary that cannot be run, runs too long or prints help of
another shape gives None: nothing is judged against it and its start goes ahead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from llama_orchestrator.config.server_flags import ServerFlags, parse_help
from llama_orchestrator.engine import platform_ops
from llama_orchestrator.engine.spawn import SpawnSpec, spawn
from llama_orchestrator.errors import SpawnError

HELP_TIMEOUT_S = 10.0

_known: dict[tuple[str, int, int], ServerFlags | None] = {}
_lock = threading.Lock()


def server_flags(binary: str) -> ServerFlags | None:
    """The flags `binary` (a path, or a name on PATH) knows; None when they cannot be read."""
    path = binary if os.path.dirname(binary) else shutil.which(binary)
    if path is None:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return None
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    with _lock:
        if key in _known:
            return _known[key]
    flags = _ask(path)
    with _lock:
        _known[key] = flags
    return flags


def _ask(path: str) -> ServerFlags | None:
    # spawned as the instances are (own process group or Job Object), so that a wrapper script which
    # ignores --help and starts a server leaves nothing behind when its time is up
    with tempfile.TemporaryDirectory(prefix="llama-orch-help-") as tmp:
        output = Path(tmp) / "help.txt"
        try:
            child = spawn(SpawnSpec("llama-server --help", [path, "--help"], {}, output))
        except SpawnError:
            return None
        assert child.popen is not None  # spawned here, so ours to wait for
        try:
            code = child.popen.wait(HELP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            platform_ops.kill_tree_now(child)
            child.popen.wait()
            return None
        finally:
            platform_ops.release(child)
        text = output.read_text(encoding="utf-8", errors="replace")
    return parse_help(text) if code == 0 else None
