"""Driving llama-orch as a user does: a home with configs, the CLI as a subprocess, the daemon's lifetime.

`Home` writes instance configs (timeouts scaled down), runs `llama-orch --home H ...` as a real
subprocess and returns a `Result` (exit code, stdout, stderr), starts the daemon as a real
detached process and ALWAYS stops it in `close()` (`daemon stop`, then SIGKILL by pid), reads
states and events through `DaemonClient`, and finds an instance's processes by the
`LLAMA_ORCH_INSTANCE` marker the engine puts in every child's environment (restricted to this
test run's marker, so nothing outside the run is ever looked at or touched).

Helpers that start processes of their own (`PortSquatter`, `sleeper`) end them by pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from llama_orchestrator.config.paths import HomePaths
from llama_orchestrator.daemon.client import DaemonClient
from llama_orchestrator.daemon.protocol import EventOut, InstanceStatus
from llama_orchestrator.errors import DaemonNotRunningError
from tests.support.procs import MARKER_ENV, marked_env
from tests.support.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
FAKE_SERVER = REPO_ROOT / "tests" / "bin" / "fake_llama_server.py"
FORKING_WRAPPER = REPO_ROOT / "tests" / "bin" / "forking_wrapper.sh"
LLAMA_ORCH = Path(sys.executable).parent / "llama-orch"
INSTANCE_ENV = "LLAMA_ORCH_INSTANCE"
#: Every exit code errors.py documents (plus 0).
DOCUMENTED_EXIT_CODES = frozenset({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 130})

#: Health and restart policies scaled down so a fault plays out in about a second.
FAST_HEALTH: dict[str, Any] = {
    "interval_s": 0.2,
    "timeout_s": 0.5,
    "failure_threshold": 3,
    "start_poll_s": 0.05,
    "start_timeout_s": 20.0,
}
FAST_RESTART: dict[str, Any] = {
    "policy": "on-failure",
    "backoff_initial_s": 0.2,
    "backoff_max_s": 5.0,
    "reset_after_s": 600.0,
    "max_start_failures": 5,
    "stop_grace_s": 1.0,
}


@dataclass(frozen=True)
class Result:
    """What one `llama-orch` invocation did."""

    args: tuple[str, ...]
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    def __str__(self) -> str:
        return f"llama-orch {' '.join(self.args)} -> exit {self.code}\nstdout:\n{self.out}\nstderr:\n{self.err}"


def _merge(base: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    return {**base, **(extra or {})}


@dataclass
class Home:
    """One orchestrator home for one test, and everything the test does through it."""

    root: Path
    scratch: Path
    daemon_pids: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.paths = HomePaths(self.root)
        self.paths.ensure()
        self.scratch.mkdir(parents=True, exist_ok=True)
        # No gateway: these tests are about supervision, and port 8000 may be taken.
        self.paths.orchestrator_file.write_text(json.dumps({"gateway": {"enabled": False}}))

    # ---- binaries ---------------------------------------------------------------------------
    def fake_binary(self, *, quiet: bool = False, wrapper: bool = False, name: str = "fake-llama-server") -> Path:
        """An executable script that runs the fake llama-server with the args it gets.

        quiet: the fake's output is thrown away (a load that shows no progress in the log).
        wrapper: run it through tests/bin/forking_wrapper.sh (backgrounded, no exec).
        """
        path = self.scratch / name
        prefix = f'exec "{FORKING_WRAPPER}" ' if wrapper else "exec "
        redirect = " 2>/dev/null" if quiet else ""
        path.write_text(f'#!/bin/sh\n{prefix}"{sys.executable}" "{FAKE_SERVER}" "$@"{redirect}\n')
        path.chmod(0o755)
        return path

    # ---- configs ----------------------------------------------------------------------------
    def write_instance(
        self,
        name: str,
        *,
        model: Path | str,
        port: int,
        binary: Path | str,
        env: dict[str, str] | None = None,
        health: dict[str, Any] | None = None,
        restart: dict[str, Any] | None = None,
        **extra: Any,
    ) -> Path:
        config: dict[str, Any] = {
            "name": name,
            "model": {"path": str(model)},
            "server": {"port": port},
            "binary": str(binary),
            "env": env or {},
            "health": _merge(FAST_HEALTH, health),
            "restart": _merge(FAST_RESTART, restart),
            **extra,
        }
        path = self.paths.instance_config(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config, indent=2))
        return path

    # ---- the CLI ----------------------------------------------------------------------------
    def cli(self, *args: str, timeout_s: float = 90.0) -> Result:
        """Run `llama-orch --home H ARGS` to completion; the result has the code and both streams."""
        proc = subprocess.run(
            [str(LLAMA_ORCH), "--home", str(self.root), *args],
            env=marked_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        return Result(tuple(args), proc.returncode, proc.stdout, proc.stderr)

    def ok(self, *args: str, timeout_s: float = 90.0) -> Result:
        result = self.cli(*args, timeout_s=timeout_s)
        assert result.code == 0, str(result)
        return result

    def popen_cli(self, *args: str) -> subprocess.Popen[str]:
        """Start `llama-orch --home H ARGS` without waiting (pipes for both streams). Its Ctrl+C
        (SIGINT) works as at a terminal even when the suite itself ignores SIGINT, as a script's
        background job does (`./scripts/test &`), which a child would inherit."""
        ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        if ignored:  # a handler, unlike SIG_IGN, is not inherited across exec
            signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            return subprocess.Popen(
                [str(LLAMA_ORCH), "--home", str(self.root), *args],
                env=marked_env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        finally:
            if ignored:
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    # ---- the daemon -------------------------------------------------------------------------
    def start_daemon(self, *, autostart: bool = False) -> int:
        """`llama-orch daemon start` (a detached real process); return its pid."""
        self.ok("daemon", "start", "--autostart" if autostart else "--no-autostart")
        return self.daemon_pid()

    def daemon_pid(self) -> int:
        pid = self.client().pid
        assert pid is not None
        self.daemon_pids.add(pid)
        return pid

    def client(self) -> DaemonClient:
        return DaemonClient.connect(self.paths)

    def daemon_running(self) -> bool:
        with contextlib.suppress(DaemonNotRunningError):
            self.client()
            return True
        return False

    def remember_daemon(self) -> None:
        """Note the pid of whatever daemon answers now (one started by a CLI command), for teardown."""
        with contextlib.suppress(DaemonNotRunningError, AssertionError):
            self.daemon_pid()

    def close(self) -> None:
        """Stop the daemon (and with it the instances); SIGKILL it by pid if it does not go."""
        self.remember_daemon()
        if self.daemon_running():
            self.cli("daemon", "stop", timeout_s=60)
        for pid in self.daemon_pids:
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.environ().get(MARKER_ENV) != os.environ.get(MARKER_ENV):
                    continue  # gone, and the pid reused by something that is not ours
                try:
                    wait_gone(pid, 10)
                except AssertionError:
                    proc.kill()
                    wait_gone(pid, 5)

    # ---- observing --------------------------------------------------------------------------
    def status(self, name: str) -> InstanceStatus:
        for status in self.client().instances():
            if status.name == name:
                return status
        raise AssertionError(f"daemon does not know {name!r}")

    def wait_state(self, name: str, *states: str, timeout_s: float = 30.0) -> InstanceStatus:
        def settled() -> InstanceStatus | None:
            status = self.status(name)
            return status if status.state in states else None

        return wait_until(settled, timeout_s, 0.05, f"{name} reaches {'/'.join(states)}")

    def events(self, name: str | None = None) -> list[EventOut]:
        return list(self.client().events(name, 0, limit=1_000_000))

    def wait_event(self, name: str, predicate: Any, timeout_s: float = 30.0, what: str = "event") -> EventOut:
        def found() -> EventOut | None:
            return next((e for e in self.events(name) if predicate(e)), None)

        return wait_until(found, timeout_s, 0.05, f"{name}: {what}")

    def log_text(self, name: str) -> str:
        path = self.paths.instance_log(name)
        return path.read_text(errors="replace") if path.exists() else ""


def instance_processes(name: str) -> list[psutil.Process]:
    """Live processes of this test run carrying `LLAMA_ORCH_INSTANCE=name` (zombies do not count)."""
    marker = os.environ.get(MARKER_ENV)
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            environ = proc.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if environ.get(INSTANCE_ENV) == name and environ.get(MARKER_ENV) == marker:
            found.append(proc)
    return found


def instance_pids(name: str) -> set[int]:
    return {p.pid for p in instance_processes(name)}


def main_processes(name: str) -> list[psutil.Process]:
    """The instance's processes whose parent is not itself one of them (the supervised child)."""
    procs = instance_processes(name)
    pids = {p.pid for p in procs}
    out = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if proc.ppid() not in pids:
                out.append(proc)
    return out


class InstanceSampler:
    """Samples, in a background thread, how many top-level processes each instance has.

    The invariant "never two live processes for one instance" is checked against `max_seen`.
    A just-forked child briefly shares its parent's environment, so only processes whose parent
    is not itself marked for the instance count (see `main_processes`).
    """

    def __init__(self, *names: str, interval_s: float = 0.05) -> None:
        self.names = names
        self.interval_s = interval_s
        self.max_seen: dict[str, int] = dict.fromkeys(names, 0)
        self.worst: dict[str, list[str]] = {n: [] for n in names}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name in self.names:
                procs = main_processes(name)
                if len(procs) > self.max_seen[name]:
                    self.max_seen[name] = len(procs)
                    self.worst[name] = [_describe(p) for p in procs]
            self.samples += 1
            self._stop.wait(self.interval_s)

    def __enter__(self) -> InstanceSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def assert_never_two(self) -> None:
        assert self.samples > 0, "the sampler never ran"
        for name in self.names:
            assert self.max_seen[name] <= 1, f"{name} had {self.max_seen[name]} live processes: {self.worst[name]}"


def _describe(proc: psutil.Process) -> str:
    try:
        return f"pid {proc.pid} ppid {proc.ppid()} {' '.join(proc.cmdline())[:160]!r}"
    except psutil.Error:
        return f"pid {proc.pid} (gone)"


# ---- foreign processes a test starts (never the daemon's) ------------------------------------
_SQUATTER = """
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
print("listening", flush=True)
while True:
    time.sleep(3600)
"""


@contextlib.contextmanager
def port_squatter(port: int) -> Iterator[subprocess.Popen[str]]:
    """A helper process holding a listening socket on 127.0.0.1:`port`; killed by pid afterwards."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _SQUATTER, str(port)], env=marked_env(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "listening", "port squatter did not start"
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@contextlib.contextmanager
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated `sleep` process; killed by pid afterwards."""
    proc = subprocess.Popen(["sleep", "600"], env=marked_env())
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=10)


def kill_pid(pid: int, sig: signal.Signals = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_gone(pid: int, timeout_s: float = 15.0) -> None:
    def gone() -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_until(gone, timeout_s, 0.05, f"pid {pid} exits")
