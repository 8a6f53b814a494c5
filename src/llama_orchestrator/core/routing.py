"""What the gateway knows about instances, and the pure choices it makes with that knowledge.

The gateway (L3) never sees supervisors or processes: the daemon hands it an `InstanceDirectory`
that returns `Upstream` snapshots and accepts start/stop requests. Choosing a replica and an
eviction victim are pure functions here, tested without sockets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from llama_orchestrator.core.states import InstanceState


@dataclass(frozen=True, slots=True)
class Upstream:
    """A snapshot of one instance as the gateway sees it (may be stale the moment it is read)."""

    name: str
    alias: str
    base_url: str
    state: InstanceState
    routable: bool  # ready and its last health probe passed
    on_demand: bool
    pinned: bool
    idle_ttl_s: float | None
    in_flight: int
    last_used: float  # monotonic seconds of the last request start or end (0 = never)
    api_key: str | None = None  # what the gateway must send to this llama-server, if it has a key

    def serves(self, model: str) -> bool:
        return model in (self.name, self.alias)


class InstanceDirectory(Protocol):
    """The daemon's side of the gateway contract. Every method is safe to call from the event loop."""

    def upstreams(self) -> list[Upstream]:
        """Snapshot of every configured instance."""
        ...

    def request_start(self, name: str, reason: str) -> None:
        """Ask the instance's supervisor to start it (no-op when it is already up or starting)."""
        ...

    def request_stop(self, name: str, reason: str) -> None:
        """Ask the instance's supervisor to stop it (idle TTL, eviction)."""
        ...

    async def wait_routable(self, name: str, timeout_s: float) -> bool:
        """Wait until the instance is routable; False on timeout or when it failed or stopped."""
        ...

    def begin_request(self, name: str) -> None:
        """Count a request in flight (also marks the instance used now)."""
        ...

    def end_request(self, name: str) -> None:
        """Count a request as finished (also marks the instance used now)."""
        ...


def candidates(upstreams: Sequence[Upstream], model: str) -> list[Upstream]:
    """Every instance that serves `model` by name or alias, in name order."""
    return sorted((u for u in upstreams if u.serves(model)), key=lambda u: u.name)


def pick_replica(replicas: Sequence[Upstream]) -> Upstream | None:
    """The routable replica with the fewest requests in flight (ties: least recently used, then name)."""
    routable = [u for u in replicas if u.routable]
    if not routable:
        return None
    return min(routable, key=lambda u: (u.in_flight, u.last_used, u.name))
