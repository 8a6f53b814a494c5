"""What the supervision benchmarks run against: homes, instance configs, binaries, daemons, ports.

Every process this module starts is recorded (`Processes`) and ended by pid at cleanup, after
a check that the pid still names the same process (psutil compares create times). The daemon is
started and stopped through the `llama-orch` command, as a user would; children the daemon
spawned are collected from `ps` so a daemon that failed to stop them cannot leak them either.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from llama_orchestrator.config.paths import HomePaths
from llama_orchestrator.daemon.client import DaemonClient

REPO = Path(__file__).resolve().parents[2]
FAKE_SERVER = REPO / "tests" / "bin" / "fake_llama_server.py"
TINY_MODEL_SCRIPT = REPO / "tests" / "support" / "tiny_model.py"


def cli_path() -> str:
    """The venv's `llama-orch` (next to the running interpreter), else the one on PATH."""
    beside = Path(sys.executable).parent / "llama-orch"
    if beside.exists():
        return str(beside)
    return "llama-orch"


def real_server_binary() -> str:
    """Path of the cached real llama-server (`scripts/build-llama-server` builds it once)."""
    out = subprocess.run(
        [str(REPO / "scripts" / "build-llama-server")], check=True, capture_output=True, text=True, cwd=REPO
    )
    return out.stdout.strip().splitlines()[-1]


def write_fake_wrapper(directory: Path) -> Path:
    """A shell wrapper so the fake server can be an instance's `binary`. `-S` skips site-packages
    (the fake is stdlib only), which keeps each of 100 copies smaller and quicker to start."""
    wrapper = directory / "fake-llama-server"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "{FAKE_SERVER}" "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    return wrapper


def write_tiny_model(path: Path) -> Path:
    subprocess.run([sys.executable, str(TINY_MODEL_SCRIPT), str(path)], check=True, capture_output=True)
    return path


def free_port_range(count: int, host: str = "127.0.0.1") -> int:
    """First port of `count` consecutive ports nobody can be seen listening on right now.

    Below 32768, where Linux, macOS and Windows pick ephemeral ports: the daemon's own probe
    connections must not take a port an instance is about to bind."""
    for _ in range(200):
        base = random.randrange(15000, 32768 - count)
        if all(_bindable(host, base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no run of {count} free ports found")


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def instance_config(
    name: str, *, binary: str, model: str, port: int, health: dict[str, Any] | None = None,
    restart: dict[str, Any] | None = None, env: dict[str, str] | None = None, autostart: bool = True,
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": name,
        "model": {"path": model},
        "server": {"host": "127.0.0.1", "port": port},
        "binary": binary,
        "autostart": autostart,
    }
    if health:
        config["health"] = health
    if restart:
        config["restart"] = restart
    if env:
        config["env"] = env
    return config


def write_instance(paths: HomePaths, config: dict[str, Any]) -> None:
    target = paths.instance_config(str(config["name"]))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(config, indent=2), encoding="utf-8")


@dataclass
class Processes:
    """Processes this run is responsible for, as psutil handles (pid + create time)."""

    tracked: dict[int, psutil.Process] = field(default_factory=dict)

    def track(self, pid: int | None) -> None:
        if pid is None or pid in self.tracked:
            return
        with contextlib.suppress(psutil.Error):
            self.tracked[pid] = psutil.Process(pid)

    def end_all(self, grace_s: float = 3.0) -> list[int]:
        """SIGTERM what is still running (same pid *and* create time), then SIGKILL; return leftovers."""
        alive = [p for p in self.tracked.values() if _same_running(p)]
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        _, still = psutil.wait_procs(alive, timeout=grace_s)
        for proc in still:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(still, timeout=grace_s)
        leftovers = [p.pid for p in alive]
        self.tracked.clear()
        return leftovers


def _same_running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class Daemon:
    """A daemon for one home, started and stopped with the `llama-orch` command."""

    def __init__(self, home: Path, processes: Processes) -> None:
        self.paths = HomePaths(home)
        self.paths.ensure()
        self.processes = processes
        self.pid: int | None = None
        self._client: DaemonClient | None = None

    def cli(self, *args: str, check: bool = True, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [cli_path(), "--home", str(self.paths.home), *args],
            check=check, capture_output=True, text=True, timeout=timeout,
        )

    def start(self) -> None:
        self.cli("daemon", "start")
        self._client = DaemonClient.connect(self.paths)
        self.pid = self._client.pid
        self.processes.track(self.pid)

    @property
    def client(self) -> DaemonClient:
        assert self._client is not None, "daemon not started"
        return self._client

    def process(self) -> psutil.Process:
        assert self.pid is not None
        return psutil.Process(self.pid)

    def track_children(self) -> None:
        """Remember every child pid the daemon reports, so cleanup can end them if it does not."""
        for status in self.client.instances():
            self.processes.track(status.pid)

    def stop(self) -> None:
        if self._client is None:
            return
        with contextlib.suppress(Exception):
            self.track_children()
        result = self.cli("daemon", "stop", check=False, timeout=120)
        if result.returncode != 0:
            print(f"warning: daemon stop failed: {result.stderr.strip()}", file=sys.stderr)
        if self.pid is not None:
            with contextlib.suppress(psutil.Error):
                psutil.Process(self.pid).wait(timeout=30)
        self._client = None


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def cpu_over(proc: psutil.Process, window_s: float) -> tuple[float, float]:
    """(CPU seconds `proc` used, seconds elapsed) over a window of `window_s`."""
    cpu0, t0 = cpu_seconds(proc), time.monotonic()
    time.sleep(window_s)
    return cpu_seconds(proc) - cpu0, time.monotonic() - t0


@contextlib.contextmanager
def spawned(argv: list[str], log_path: Path, processes: Processes, env: dict[str, str] | None = None
            ) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` in its own session with output to `log_path`; SIGKILL its group afterwards."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    processes.track(proc.pid)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_port_free(port: int, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not _bindable("127.0.0.1", port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"port {port} still taken after {timeout_s} s")
        time.sleep(0.01)
