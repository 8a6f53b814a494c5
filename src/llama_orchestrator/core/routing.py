"""What the gateway knows about instances, and the pure choices it makes with that knowledge.

The gateway (L3) never sees supervisors or processes: the daemon hands it an `InstanceDirectory`
that returns `Upstream` snapshots and accepts start/stop requests. Choosing a replica and an
eviction victim are pure functions here, tested without sockets.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from llama_orchestrator.core.states import WANTED_UP_STATES, InstanceState
from llama_orchestrator.core.traffic_health import Evidence


@dataclass(slots=True)
class Upstream:
    """A snapshot of one instance as the gateway sees it (may be stale the moment it is read).

    Never changed once made (derive another with `dataclasses.replace`). It is not frozen only
    because a frozen dataclass sets each of its 30 fields through object.__setattr__: building
    the snapshots of each request that way cost about a tenth of the gateway's instructions per
    request (bench.gateway.instructions)."""

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
    slots: int | None = None  # parallel slots (its concurrency limit); None = unknown, no limit
    metrics: bool = False  # the llama-server runs with --metrics (the gateway relabels its /metrics)
    restarts: int = 0  # restarts in its current run, since a user or a request last started it (/metrics)
    ready_in_s: float | None = None  # not up: when a start should be ready, from learned load times
    aliases: tuple[str, ...] = ()  # more names that route here (model.aliases, and the variants)
    variants: tuple[str, ...] = ()  # which of `aliases` are variants: a key scoped to one reaches only it
    restarting: bool = False  # stopping only to start again: requests wait for it as for a start
    up_for_s: float | None = None  # seconds since it last became ready; None when not up (or not known)
    min_residency_s: float | None = None  # under max_loaded, not evicted this soon after becoming ready
    eviction_priority: int = 0  # under max_loaded, lower values are evicted first
    group: str | None = None  # counted against gateway.group_limits[group] as well as max_loaded
    # its request_filters and variants (gateway.request_filters): (body, model named) -> body to send
    rewrite_body: Callable[[bytes, str], bytes] | None = None
    listed: bool = True  # in the gateway's model lists (`unlisted` instances are served, not offered)
    model_bytes: int = 0  # its model file's size (a split model's parts together); 0 when unknown
    model_mtime: float = 0.0  # that file's last change, epoch seconds; 0 when unknown
    model_path: str = ""  # the model file (the first part of a split model); "" when unknown
    memory_pool: str = "ram"  # the memory budget it counts against (config.footprint.pool_of)
    memory_bytes: int = 0  # what it holds (or will) when loaded; 0 when not known or not asked for

    @property
    def residency_left_s(self) -> float:
        """Seconds until its minimum residency is over (0 when it has none or it is over)."""
        if self.min_residency_s is None or self.up_for_s is None:
            return 0.0
        return max(0.0, self.min_residency_s - self.up_for_s)

    def serves(self, model: str) -> bool:
        return model == self.name or model == self.alias or model in self.aliases

    @property
    def names(self) -> tuple[str, ...]:
        """Every name that routes here: the instance name, its alias and its further aliases."""
        return (self.name, self.alias, *self.aliases)

    @property
    def has_free_slot(self) -> bool:
        return self.slots is None or self.in_flight < self.slots


class InstanceDirectory(Protocol):
    """The daemon's side of the gateway contract. Every method is safe to call from the event loop."""

    def upstreams(self, model: str | None = None) -> list[Upstream]:
        """Snapshot of every configured instance, or of those serving `model` (name or alias):
        the per-request path, which must not cost time in proportion to the whole fleet."""
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

    async def wait_stopped(self, name: str, timeout_s: float) -> bool:
        """Wait until the instance has no process (stopped or failed); False on timeout."""
        ...

    def begin_request(self, name: str) -> None:
        """Count a request in flight (also marks the instance used now)."""
        ...

    def end_request(self, name: str, evidence: Evidence = None) -> None:
        """Count a request as finished (also marks the instance used now); `evidence` is what it
        says of the instance's health (core.traffic_health)."""
        ...


def candidates(upstreams: Sequence[Upstream], model: str) -> list[Upstream]:
    """Every instance that serves `model` by name or alias, in name order."""
    if len(upstreams) == 1:  # a model served once, as most are: no sort
        return [upstreams[0]] if upstreams[0].serves(model) else []
    return sorted((u for u in upstreams if u.serves(model)), key=lambda u: u.name)


def pick_replica(replicas: Sequence[Upstream]) -> Upstream | None:
    """The routable replica with the fewest requests in flight (ties: least recently used, then name)."""
    routable = [u for u in replicas if u.routable]
    if len(routable) < 2:
        return routable[0] if routable else None
    return min(routable, key=lambda u: (u.in_flight, u.last_used, u.name))


# --- choices the gateway makes per request ------------------------------------------------------


def default_model(upstreams: Sequence[Upstream], configured: str | None = None) -> str | None:
    """The model a request without a `model` field gets: the configured one (gateway.default_model),
    else the only served name, else None."""
    if configured:
        return configured
    served = {u.alias or u.name for u in upstreams}
    return served.pop() if len(served) == 1 else None


@dataclass(frozen=True, slots=True)
class Dispatch:
    """Send the request to this replica now."""

    upstream: Upstream


@dataclass(frozen=True, slots=True)
class Enqueue:
    """Every routable replica is at its slot limit and the queue has room: wait for a slot."""


@dataclass(frozen=True, slots=True)
class Overloaded:
    """Every routable replica is full and so is the queue: answer 429 with Retry-After."""


@dataclass(frozen=True, slots=True)
class StartFirst:
    """No replica is routable; `name` (on-demand, stopped) should be started, then waited for."""

    name: str


@dataclass(frozen=True, slots=True)
class AwaitStart:
    """No replica is routable but `name` is on its way up (starting, backoff): wait for it."""

    name: str


@dataclass(frozen=True, slots=True)
class Unavailable:
    """No replica is routable and none will become so by itself (stopped, failed, unhealthy)."""

    reason: str


Admission = Dispatch | Enqueue | Overloaded | StartFirst | AwaitStart | Unavailable


def pick_free_replica(replicas: Sequence[Upstream]) -> Upstream | None:
    """Like `pick_replica`, among routable replicas that have a free slot."""
    return pick_replica([u for u in replicas if u.has_free_slot])


def admit(replicas: Sequence[Upstream], queued: int, queue_size: int) -> Admission:
    """Decide what to do with one request for a model served by `replicas` (all its candidates).

    `queued` is how many requests for this model already wait for a slot; the queue holds
    `queue_size` per routable replica.
    """
    free = pick_free_replica(replicas)
    if free is not None:
        return Dispatch(free)
    routable = [u for u in replicas if u.routable]
    if routable:
        return Enqueue() if queued < queue_size * len(routable) else Overloaded()
    coming = sorted((u for u in replicas if u.state in COMING_UP or u.restarting), key=lambda u: u.name)
    if coming:
        return AwaitStart(coming[0].name)
    startable = sorted((u for u in replicas if u.on_demand and u.state in _STARTABLE), key=lambda u: u.name)
    if startable:
        return StartFirst(startable[0].name)
    return Unavailable(_why_unavailable(replicas))


COMING_UP = frozenset({InstanceState.STARTING, InstanceState.BACKOFF, InstanceState.RECONCILING})
_STARTABLE = frozenset({InstanceState.STOPPED, InstanceState.STOPPING})


def _why_unavailable(replicas: Sequence[Upstream]) -> str:
    parts = []
    for u in sorted(replicas, key=lambda u: u.name):
        if u.state is InstanceState.STOPPED:
            parts.append(f"{u.name} is stopped (start it with `llama-orch up {u.name}`)")
        else:
            parts.append(f"{u.name} is {u.state.value}")
    return "; ".join(parts) or "no instance serves this model"


# --- capacity: at most N loaded, and idle expiry -------------------------------------------------


def loaded_on_demand(upstreams: Sequence[Upstream], starting: Collection[str] = ()) -> list[Upstream]:
    """On-demand instances that hold (or are about to hold) memory: up, coming up, or asked to start."""
    return [u for u in upstreams if u.on_demand and (u.state in WANTED_UP_STATES or u.name in starting)]


def choose_evictions(
    upstreams: Sequence[Upstream], max_loaded: int | None, starting: Collection[str],
    awaited: Collection[str] = (), group_limits: Mapping[str, int] | None = None,
    budgets: Mapping[str, int] | None = None,
) -> list[str] | None:
    """Which instances to stop so that starting `starting` keeps at most `max_loaded` on-demand ones
    up, at most `group_limits[g]` of each group g, and the memory of every instance up in the
    pool p of each instance starting (on-demand or not) within `budgets[p]` bytes.

    Each full group gives up its own members first; what max_loaded, then each budget, still
    needs comes from any. Victims are the on-demand instances `evictable` allows, the lowest
    `eviction_priority` first, then the least recently used. Returns [] when nothing has to go,
    and None when room cannot be made (every other loaded instance is pinned, busy, awaited or
    within its minimum residency).
    """
    loaded = loaded_on_demand(upstreams, starting)
    victims: list[Upstream] = []
    for group, limit in sorted((group_limits or {}).items()):
        members = [u for u in loaded if u.group == group]
        chosen = _victims(members, len(members) - limit, starting, awaited)
        if chosen is None:
            return None
        victims += chosen
    if max_loaded is not None:
        left = [u for u in loaded if u not in victims]
        chosen = _victims(left, len(left) - max_loaded, starting, awaited)
        if chosen is None:
            return None
        victims += chosen
    pools = {u.memory_pool for u in upstreams if u.name in starting}  # a start never evicts for another pool
    for pool, budget in sorted((budgets or {}).items()):
        if pool not in pools:
            continue
        holding = [u for u in _holding(upstreams, pool, starting) if u not in victims]
        chosen = _victims_freeing(holding, sum(u.memory_bytes for u in holding) - budget, starting, awaited)
        if chosen is None:
            return None
        victims += chosen
    return [u.name for u in victims]


def _holding(upstreams: Sequence[Upstream], pool: str, starting: Collection[str]) -> list[Upstream]:
    """Instances of every kind that hold (or are about to hold) memory of `pool`."""
    return [u for u in upstreams if u.memory_pool == pool and (u.state in WANTED_UP_STATES or u.name in starting)]


def _victims_freeing(
    holding: Sequence[Upstream], excess: int, starting: Collection[str], awaited: Collection[str]
) -> list[Upstream] | None:
    """The fewest on-demand instances, in eviction order, whose memory covers `excess` bytes."""
    if excess <= 0:
        return []
    chosen = []
    for u in sorted((u for u in holding if u.on_demand and evictable(u, starting, awaited)),
                    key=lambda u: (u.eviction_priority, u.last_used, u.name)):
        chosen.append(u)
        excess -= u.memory_bytes
        if excess <= 0:
            return chosen
    return None


def over_budget(upstreams: Sequence[Upstream], name: str, budgets: Mapping[str, int],
                starting: Collection[str]) -> tuple[str, int, int] | None:
    """When the memory pool of `name` is what has no room: (pool, bytes held with it, budget)."""
    target = next((u for u in upstreams if u.name == name), None)
    if target is None or target.memory_pool not in budgets:
        return None
    held = sum(u.memory_bytes for u in _holding(upstreams, target.memory_pool, starting))
    budget = budgets[target.memory_pool]
    return (target.memory_pool, held, budget) if held > budget else None


def never_fits(upstreams: Sequence[Upstream], name: str,
               budgets: Mapping[str, int]) -> tuple[str, int, int, int] | None:
    """When `name` cannot fit its pool's budget even with every evictable instance stopped, beside
    the instances up that are never evicted (not on-demand, or pinned): (pool, its own bytes,
    the bytes those others hold, budget)."""
    target = next((u for u in upstreams if u.name == name), None)
    if target is None or target.memory_pool not in budgets:
        return None
    kept = sum(u.memory_bytes for u in _holding(upstreams, target.memory_pool, ())
               if u.name != name and (not u.on_demand or u.pinned))
    budget = budgets[target.memory_pool]
    return (target.memory_pool, target.memory_bytes, kept, budget) if kept + target.memory_bytes > budget else None


def _victims(
    loaded: Sequence[Upstream], excess: int, starting: Collection[str], awaited: Collection[str]
) -> list[Upstream] | None:
    if excess <= 0:
        return []
    victims = sorted(
        (u for u in loaded if evictable(u, starting, awaited)),
        key=lambda u: (u.eviction_priority, u.last_used, u.name),
    )
    return victims[:excess] if len(victims) >= excess else None


def full_group(
    upstreams: Sequence[Upstream], name: str, group_limits: Mapping[str, int], starting: Collection[str]
) -> str | None:
    """The group of `name` when it is the one that has no room (for the words of a refusal), or None."""
    group = next((u.group for u in upstreams if u.name == name), None)
    if group is None or group not in group_limits:
        return None
    members = [u for u in loaded_on_demand(upstreams, starting) if u.group == group]
    return group if len(members) > group_limits[group] else None


def evictable(u: Upstream, starting: Collection[str], awaited: Collection[str]) -> bool:
    """Whether `u` may be stopped to make room: `_unclaimed`, and loaded for at least its
    `min_residency_s` (so two models taking turns under max_loaded do not reload at every request)."""
    return _unclaimed(u, starting, awaited) and u.residency_left_s == 0.0


def _unclaimed(u: Upstream, starting: Collection[str], awaited: Collection[str]) -> bool:
    """Not pinned, serving no request, not itself being started, and not `awaited` (a request
    waits to use it: evicting it would waste its load before it answers)."""
    return not u.pinned and u.in_flight == 0 and u.name not in starting and u.name not in awaited


def room_in_s(upstreams: Sequence[Upstream], starting: Collection[str], awaited: Collection[str]) -> float | None:
    """When no room can be made now: the seconds until the first loaded instance that only its
    minimum residency keeps becomes evictable; None when no instance is kept by that alone."""
    lefts = [u.residency_left_s for u in loaded_on_demand(upstreams, starting)
             if u.residency_left_s > 0 and _unclaimed(u, starting, awaited)]
    return min(lefts) if lefts else None


_IDLE_STATES = frozenset({InstanceState.READY, InstanceState.UNHEALTHY})


def idle_expired(upstreams: Sequence[Upstream], now: float) -> list[str]:
    """Instances with an idle TTL that have served nothing for that long (and serve nothing now).

    `now` and `last_used` are the same monotonic clock; an instance never used (last_used 0)
    is not expired: the directory stamps last_used when an instance becomes ready.
    """
    return sorted(
        u.name
        for u in upstreams
        if u.idle_ttl_s is not None
        and u.state in _IDLE_STATES
        and u.in_flight == 0
        and u.last_used > 0
        and now - u.last_used >= u.idle_ttl_s
    )


def loading_retry_after(replica: Upstream | None, default_s: int, longest_s: int = 60) -> int:
    """Retry-After (whole seconds) for a request refused while `replica` loads: what is left of
    its learned load time, at least 1 s and at most `longest_s`; `default_s` when never timed."""
    if replica is None or replica.ready_in_s is None:
        return default_s
    return min(longest_s, max(1, math.ceil(replica.ready_in_s)))
