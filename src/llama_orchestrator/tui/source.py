"""What the dashboard needs from the daemon: the `DashboardClient` protocol and how to get one.

`daemon.client.DaemonClient` satisfies it; tests and the benchmark pass hand-written fakes. The
app never builds a client itself: it calls a `ClientFactory`, which raises `DaemonNotRunningError`
when no daemon answers, and (optionally) a `DaemonStarter` when the user asks to start one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

from llama_orchestrator.daemon.protocol import DaemonStatus, EventOut, InstanceDetail, InstanceStatus


class DashboardClient(Protocol):
    def status(self) -> DaemonStatus: ...

    def instances(self) -> list[InstanceStatus]: ...

    def inspect(self, name: str) -> InstanceDetail: ...

    def act(self, action: str, names: list[str], wait_s: float | None = None) -> Any: ...

    def events(
        self, instance: str | None = None, after_id: int = 0, *, follow: bool = False, limit: int = 1000
    ) -> Iterator[EventOut]: ...

    def logs(self, name: str, lines: int = 100, *, follow: bool = False) -> Iterator[str]: ...


ClientFactory = Callable[[], DashboardClient]
DaemonStarter = Callable[[], object]
