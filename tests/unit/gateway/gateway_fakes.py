"""Hand-written InstanceDirectory fakes for gateway tests (the daemon's real one comes later).

StaticDirectory   fixed upstreams whose state tests change with `set()`; records starts/stops.
ProcessDirectory  a StaticDirectory whose `request_start` spawns a server process (the fake or
                  the real llama-server) and marks it ready when /health answers 200, and whose
                  `request_stop` kills it by PID. `close()` ends every process it started.

Import from any tier as ``from tests.unit.gateway.gateway_fakes import StaticDirectory``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from tests.support.procs import kill_group, spawn_server

from llama_orchestrator.core.routing import Upstream
from llama_orchestrator.core.states import InstanceState
from llama_orchestrator.core.traffic_health import Evidence

S = InstanceState


def upstream(name: str, alias: str = "", *, port: int = 9, state: S = S.READY, routable: bool | None = None,
             **fields: object) -> Upstream:
    """An Upstream with test-friendly defaults (ready and routable unless told otherwise)."""
    base = Upstream(
        name=name, alias=alias or name, base_url=f"http://127.0.0.1:{port}", state=state,
        routable=(state is S.READY) if routable is None else routable, on_demand=False, pinned=False,
        idle_ttl_s=None, in_flight=0, last_used=0.0,
    )
    return replace(base, **fields)  # type: ignore[arg-type]


class StaticDirectory:
    def __init__(self, upstreams: Sequence[Upstream], clock: Callable[[], float] = time.monotonic) -> None:
        self.entries = {u.name: u for u in upstreams}
        self.clock = clock
        self.starts: list[tuple[str, str]] = []
        self.stops: list[tuple[str, str]] = []
        self.begun: list[str] = []
        self.ended: list[tuple[str, Evidence]] = []  # (instance, what the request said of its health)
        self._changed = asyncio.Event() if _has_loop() else None

    # --- test controls ---
    def set(self, name: str, **changes: object) -> None:
        self.entries[name] = replace(self.entries[name], **changes)  # type: ignore[arg-type]
        if self._changed is not None:
            self._changed.set()

    # --- InstanceDirectory ---
    def upstreams(self, model: str | None = None) -> list[Upstream]:
        return [u for u in self.entries.values() if model is None or u.serves(model)]

    def request_start(self, name: str, reason: str) -> None:
        self.starts.append((name, reason))

    def request_stop(self, name: str, reason: str) -> None:
        """Recorded; the state is the test's to change (`set`), as a real stop takes a while."""
        self.stops.append((name, reason))

    async def wait_routable(self, name: str, timeout_s: float) -> bool:
        return await self._wait(name, timeout_s, lambda u: u.routable, lambda u: u.state is S.FAILED)

    async def wait_stopped(self, name: str, timeout_s: float) -> bool:
        return await self._wait(name, timeout_s, lambda u: u.state in (S.STOPPED, S.FAILED), lambda _u: False)

    async def _wait(self, name: str, timeout_s: float, done: Callable[[Upstream], bool],
                    failed: Callable[[Upstream], bool]) -> bool:
        if self._changed is None:
            self._changed = asyncio.Event()
        deadline = time.monotonic() + timeout_s
        while True:
            entry = self.entries[name]
            if done(entry):
                return True
            if failed(entry):
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.05))

    def begin_request(self, name: str) -> None:
        u = self.entries[name]
        self.begun.append(name)
        self.entries[name] = replace(u, in_flight=u.in_flight + 1, last_used=self.clock())

    def end_request(self, name: str, evidence: Evidence = None) -> None:
        self.ended.append((name, evidence))
        u = self.entries[name]
        self.entries[name] = replace(u, in_flight=u.in_flight - 1, last_used=self.clock())


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class ProcessDirectory(StaticDirectory):
    """Starts a process per instance on request; `commands[name]` is its argv (it must listen on
    the port in that instance's base_url). Ready = GET /health answered 200."""

    def __init__(self, upstreams: Sequence[Upstream], commands: dict[str, list[str]], log_dir: Path,
                 env: dict[str, dict[str, str]] | None = None) -> None:
        super().__init__(upstreams)
        self.commands = commands
        self.env = env or {}
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._watchers: list[asyncio.Task[None]] = []

    def request_start(self, name: str, reason: str) -> None:
        super().request_start(name, reason)
        if name in self.procs and self.procs[name].poll() is None:
            return
        env = None
        if name in self.env:
            env = {**os.environ, **self.env[name]}
        self.procs[name] = spawn_server(self.commands[name], env, self.log_dir / f"{name}.log")
        self.set(name, state=S.STARTING, routable=False)
        self._watchers.append(asyncio.get_running_loop().create_task(self._watch(name)))

    async def _watch(self, name: str) -> None:
        url = self.entries[name].base_url + "/health"
        proc = self.procs[name]
        while proc.poll() is None:
            ok = await asyncio.to_thread(_get_ok, url)
            if ok:
                self.set(name, state=S.READY, routable=True, last_used=self.clock())
                break
            await asyncio.sleep(0.05)
        while proc.poll() is None:  # then notice an exit
            await asyncio.sleep(0.05)
        if self.entries[name].state is not S.STOPPED:
            self.set(name, state=S.BACKOFF, routable=False)

    def request_stop(self, name: str, reason: str) -> None:
        super().request_stop(name, reason)
        proc = self.procs.pop(name, None)
        self.set(name, state=S.STOPPED, routable=False)
        if proc is not None:
            kill_group(proc)

    async def close(self) -> None:
        for task in self._watchers:
            task.cancel()
        for name in list(self.procs):
                kill_group(self.procs.pop(name))


def _get_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False
