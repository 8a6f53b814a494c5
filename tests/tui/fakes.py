"""`FakeDaemonClient`: a hand-written stand-in for `DaemonClient`, for the dashboard's unit tests,
its layout snapshots and the benchmark. Deterministic: fixed pids, ports, uptimes and clock.

Streams are `FakeStream` objects (a queue with a thread-safe `close()`), so the dashboard's feeds
end as they would on a real connection. Calls are recorded in `calls`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

from llama_orchestrator.daemon.protocol import (
    ActionResult,
    DaemonStatus,
    EventOut,
    GatewayInfo,
    InstanceDetail,
    InstanceStatus,
)
from llama_orchestrator.errors import DaemonNotRunningError

T0 = 1_700_000_000.0


class FakeStream:
    """A blocking iterator fed by `push()`; `close()` (from any thread) ends it."""

    _END = object()

    def __init__(self, items: list[Any] | None = None) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self.closed = threading.Event()
        for item in items or []:
            self._queue.put(item)

    def push(self, item: Any) -> None:
        self._queue.put(item)

    def close(self) -> None:
        self.closed.set()
        self._queue.put(self._END)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        item = self._queue.get()
        if item is self._END:
            raise StopIteration
        return item


def make_status(i: int, state: str = "ready", **changes: Any) -> InstanceStatus:
    fields: dict[str, Any] = {
        "name": f"model-{i:03d}",
        "state": state,
        "desired": "running",
        "pid": 40000 + i,
        "host": "127.0.0.1",
        "port": 9000 + i,
        "alias": f"alias-{i:03d}",
        "backend": "cpu",
        "model": f"/models/m{i:03d}.gguf",
        "uptime_s": 60.0 * i + 5,
        "restarts": i % 3,
        "cpu_percent": float(i % 7),
        "rss_bytes": (200 + i) * 1024 * 1024,
        "in_flight": i % 2,
    }
    fields.update(changes)
    return InstanceStatus(**fields)


class FakeDaemonClient:
    def __init__(self, statuses: list[InstanceStatus] | None = None, *, gateway: str | None = "127.0.0.1:8000") -> None:
        self.statuses = list(statuses if statuses is not None else [make_status(i) for i in range(1, 4)])
        self.gateway = GatewayInfo(enabled=gateway is not None, address=gateway)
        self.calls: list[tuple[str, Any]] = []
        self.event_streams: list[FakeStream] = []
        self.log_streams: list[tuple[str, FakeStream]] = []
        self.log_lines = [f"line {n} of the log" for n in range(1, 6)]
        self._lock = threading.Lock()

    def status(self) -> DaemonStatus:
        with self._lock:
            self.calls.append(("status", None))
            instances = list(self.statuses)
        return DaemonStatus(
            pid=4242, version="0.1.0", home="/home/user/.local/share/llama-orchestrator",
            control_address="127.0.0.1:47000", started_at=T0, uptime_s=3725.0, gateway=self.gateway,
            store="ok", store_ok=True, instances=instances, host_cpu_percent=12.5, host_memory_percent=43.0,
        )

    def instances(self) -> list[InstanceStatus]:
        with self._lock:
            self.calls.append(("instances", None))
            return list(self.statuses)

    def inspect(self, name: str) -> InstanceDetail:
        self.calls.append(("inspect", name))
        status = next(s for s in self.statuses if s.name == name)
        argv = ["/opt/llama/llama-server", "--host", status.host, "--port", str(status.port),
                "-m", status.model, "--alias", status.alias]
        return InstanceDetail(status=status, config={}, argv=argv, env={}, log_path=f"/logs/{name}.log",
                              log_tail=self.log_lines)

    def act(self, action: str, names: list[str], wait_s: float | None = None) -> ActionResult:
        self.calls.append(("act", (action, tuple(names))))
        return ActionResult(instances=[], last_event_id=0)

    def events(self, instance: str | None = None, after_id: int = 0, *, follow: bool = False,
               limit: int = 1000, tail: int | None = None) -> FakeStream:
        self.calls.append(("events", (instance, after_id, follow)))
        if not follow:
            stream = FakeStream([EventOut(id=1, instance=instance or "model-001", from_state="starting",
                                          to_state="ready", reason="health 200", at=T0)])
            stream.close()
            return stream
        stream = FakeStream()
        self.event_streams.append(stream)
        return stream

    def logs(self, name: str, lines: int = 100, *, follow: bool = False) -> FakeStream:
        self.calls.append(("logs", (name, follow)))
        stream = FakeStream(self.log_lines[-lines:])
        if not follow:
            stream.close()
        self.log_streams.append((name, stream))
        return stream

    def set_statuses(self, statuses: list[InstanceStatus]) -> None:
        with self._lock:
            self.statuses = list(statuses)


def no_daemon() -> FakeDaemonClient:
    raise DaemonNotRunningError("no daemon is running for /home/user/.local/share/llama-orchestrator",
                                hint="start it with `llama-orch daemon start`")
