"""What the dashboard needs from the daemon: the `DashboardClient` protocol and how to get one.

`daemon.client.DaemonClient` satisfies it; tests and the benchmark pass hand-written fakes. The
app never builds a client itself: it calls a `ClientFactory`, which raises `DaemonNotRunningError`
when no daemon answers, and (optionally) a `DaemonStarter` when the user asks to start one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

from llama_orchestrator.daemon.protocol import DaemonStatus, EventOut, InstanceDetail, InstanceStatus

T_co = TypeVar("T_co", covariant=True)


class ItemStream(Protocol[T_co]):
    """A streamed answer (`daemon.client.Stream`): iterate it; `close()` from any thread ends a blocked read."""

    def __iter__(self) -> Iterator[T_co]: ...

    def __next__(self) -> T_co: ...

    def close(self) -> None: ...


class DashboardClient(Protocol):
    def status(self) -> DaemonStatus: ...

    def instances(self) -> list[InstanceStatus]: ...

    def inspect(self, name: str) -> InstanceDetail: ...

    def act(self, action: str, names: list[str], wait_s: float | None = None) -> Any: ...

    def events(
        self, instance: str | None = None, after_id: int = 0, *, follow: bool = False, limit: int = 1000,
        tail: int | None = None,
    ) -> ItemStream[EventOut]: ...

    def logs(self, name: str, lines: int = 100, *, follow: bool = False) -> ItemStream[str]: ...


ClientFactory = Callable[[], DashboardClient]
DaemonStarter = Callable[[], object]
