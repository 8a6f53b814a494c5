"""Starting the daemon in the background (`daemon start`, and any command that needs it).

The daemon is a detached `python -m llama_orchestrator daemon run` in its own session (POSIX)
or a new process group with no console window (Windows), so closing the terminal does not stop
it. Its early output (anything before logging is set up) goes to `<home>/logs/daemon.out`.
We wait until it answers on the control API, or report why it exited.
"""

from __future__ import annotations

import subprocess
import sys
import time

from llama_orchestrator._platform import IS_WINDOWS
from llama_orchestrator.config.paths import HomePaths
from llama_orchestrator.daemon.client import DaemonClient
from llama_orchestrator.errors import DaemonError, DaemonNotRunningError

START_TIMEOUT_S = 30.0
POLL_S = 0.05


def daemon_argv(paths: HomePaths, *, autostart: bool, python: str | None = None) -> list[str]:
    argv = [python or sys.executable, "-m", "llama_orchestrator", "--home", str(paths.home), "daemon", "run"]
    if not autostart:
        argv.append("--no-autostart")
    return argv


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
    out_path = paths.logs_dir / "daemon.out"
    with open(out_path, "ab") as out:
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
