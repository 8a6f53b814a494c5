"""Starting the daemon in the background (`daemon start`, and any command that needs it).

The daemon is a detached `python -m llama_orchestrator daemon run` in its own session (POSIX)
or a new process group with no console window (Windows), so closing the terminal does not stop
it. It logs only to `<home>/logs/daemon.log` (rotated): `daemon run --no-stderr-log`. Its
stdout and stderr go to `<home>/logs/daemon.out`, which therefore keeps only what the log
cannot catch: a failure before logging is set up, an uncaught traceback, a library that prints.
That file is bounded too: over `DAEMON_OUT_MAX_BYTES` at launch it is copied to
`daemon.out.1` and emptied first.
We wait until it answers on the control API, or report why it exited.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from llama_orchestrator._platform import IS_WINDOWS
from llama_orchestrator.config.paths import HomePaths
from llama_orchestrator.daemon.client import DaemonClient
from llama_orchestrator.engine import open_private, rotate_if_needed
from llama_orchestrator.errors import DaemonError, DaemonNotRunningError

START_TIMEOUT_S = 30.0
POLL_S = 0.05
DAEMON_OUT_MAX_BYTES = 1024 * 1024
"""`daemon.out` over this size at launch is rotated to `daemon.out.1` (one backup) first."""


def daemon_argv(paths: HomePaths, *, autostart: bool, python: str | None = None) -> list[str]:
    argv = [python or sys.executable, "-m", "llama_orchestrator", "--home", str(paths.home), "daemon", "run"]
    if not autostart:
        argv.append("--no-autostart")
    argv.append("--no-stderr-log")  # stderr is daemon.out, a file: the log has its own
    return argv


def daemon_out_path(paths: HomePaths) -> Path:
    return paths.logs_dir / "daemon.out"


def open_daemon_out(paths: HomePaths) -> int:
    """Open `daemon.out` for appending (0600 on POSIX), rotating it first when it is too big.

    Rotation is copy-then-truncate (`engine.rotate_if_needed`), so a daemon still holding the
    file (one that lost a start race) keeps appending to the live file, on Windows too.
    """
    out_path = daemon_out_path(paths)
    rotate_if_needed(out_path, DAEMON_OUT_MAX_BYTES, 1)
    return open_private(out_path, append=True)


def start_detached(paths: HomePaths, *, autostart: bool = True, timeout_s: float = START_TIMEOUT_S) -> DaemonClient:
    """Start a daemon for `paths` and return a client once it answers.

    Raises:
        DaemonError: it exited early (with the last lines of its output) or never answered.
    """
    if IS_WINDOWS:
        from llama_orchestrator.daemon import _launch_windows as ops
    else:
        from llama_orchestrator.daemon import _launch_posix as ops  # type: ignore[no-redef]
    paths.ensure()
    out_path = daemon_out_path(paths)
    with open(open_daemon_out(paths), "ab") as out:
        proc = subprocess.Popen(
            daemon_argv(paths, autostart=autostart, python=ops.interpreter()),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            close_fds=True,
            **ops.detached_kwargs(),
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            tail = out_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
            raise DaemonError(f"the daemon exited at start (code {code}): " + " | ".join(tail))
        try:
            client = DaemonClient.connect(paths)
        except DaemonNotRunningError:
            time.sleep(POLL_S)  # waiting for another process to come up: nothing to wait on but time
            continue
        if client.pid == proc.pid:
            return client
        time.sleep(POLL_S)
    raise DaemonError(f"the daemon did not answer within {timeout_s:g} s; see {paths.daemon_log}")


def ensure_daemon(paths: HomePaths) -> DaemonClient:
    """A client for the running daemon, starting one (without autostart) when none runs."""
    try:
        return DaemonClient.connect(paths)
    except DaemonNotRunningError:
        pass
    try:
        return start_detached(paths, autostart=False)
    except DaemonError:
        # Lost a race with another command starting it at the same moment? Then it answers now.
        return DaemonClient.connect(paths)
