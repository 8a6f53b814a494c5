"""Lifecycle from traffic: which replica a request gets, starting on-demand instances, the bounded
queue, eviction under `max_loaded`, `group_limits` and the memory budgets, and the idle-TTL reaper.

The decisions are the pure functions of `core.routing` (`admit`, `choose_evictions`,
`idle_expired`); this module only waits and calls the directory. Picking a replica and counting
it in flight (`begin_request`) happen with no `await` in between, so two requests can never
both take a replica's last slot.

When `max_loaded` is reached and every loaded instance is busy, pinned or within its
`min_residency_s`, a held request (`start_wait: "hold"`) waits for one to become evictable, as
llama-swap's queue does, instead of failing at once; an instance some request is waiting to use
is never evicted for another's start, so two models wanted at once take turns instead of
evicting each other before either answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from llama_orchestrator.config.footprint import GIB
from llama_orchestrator.config.orchestrator import GatewayConfig
from llama_orchestrator.core import routing
from llama_orchestrator.core.routing import InstanceDirectory, Upstream
from llama_orchestrator.core.traffic_health import Evidence
from llama_orchestrator.gateway.catalog import available_models
from llama_orchestrator.gateway.errors import ModelNotFound, Overloaded, Unavailable
from llama_orchestrator.gateway.stopping import Stopping
from llama_orchestrator.units import size

logger = logging.getLogger(__name__)
LOADING_RETRY_AFTER_S = 5  # a model never timed loading yet; later its learned load time decides
BUSY_RETRY_AFTER_S = 1
QUEUE_RECHECK_S = 0.5  # queued requests re-read the directory this often even without a wake-up


class Traffic:
    def __init__(
        self,
        config: GatewayConfig,
        directory: InstanceDirectory,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.directory = directory
        self.clock = clock
        self._start_waits: dict[str, asyncio.Task[bool]] = {}
        self._queued: dict[str, int] = {}
        self._slot_waiters: set[asyncio.Future[None]] = set()
        self._awaited: dict[str, int] = {}  # instance -> requests waiting for it to become routable
        self.evictions: dict[str, int] = {}  # instance -> times stopped to make room (`/metrics`)
        self.stopping = Stopping()  # once closed, every wait in `acquire` ends in 503 shutting_down

    def what_holds(self, model: str) -> str:
        """What a request for `model` waits for now, in words (a held stream's keep-alive says it)."""
        replicas = routing.candidates(self.directory.upstreams(model), model)
        if any(u.name in self._start_waits or u.state in routing.COMING_UP or u.restarting for u in replicas):
            return f"loading model {model!r}"
        if any(u.routable for u in replicas):
            return f"waiting for a free slot of {model!r}"
        room_in = self._room_in_s(set())
        limit = self.limit_words(replicas[0].name if replicas else None)
        if room_in is not None:
            return (f"waiting for room to load {model!r} ({limit}: "
                    f"a loaded model can go in {math.ceil(room_in)} s, after its min_residency_s)")
        return f"waiting for room to load {model!r} ({limit}: every loaded model is busy)"

    @property
    def waiting(self) -> int:
        """Requests waiting now: for a slot, for a model to load, or for room to load it."""
        return sum(self._queued.values()) + sum(self._awaited.values())

    # --- per request ---------------------------------------------------------------------------
    async def acquire(
        self, model: str, upstreams: list[Upstream] | None = None, exclude: frozenset[str] = frozenset()
    ) -> Upstream:
        """A replica for `model`, already counted in flight; raise an HTTP failure otherwise.

        `upstreams` is a snapshot of `model`'s instances the caller just took (saves another); later
        rounds (after a wait) always take a fresh one. Replicas named in `exclude` (found dead
        by this request already) are not considered. The caller must call
        `release(upstream.name)` exactly once afterwards.
        """
        waits = _Waits()
        try:
            while True:
                if upstreams is None:
                    upstreams = self.directory.upstreams(model)
                replicas = routing.candidates(upstreams, model)
                upstreams = None
                if not replicas:
                    raise ModelNotFound(model, available_models(self.directory.upstreams()))
                if exclude:
                    replicas = [u for u in replicas if u.name not in exclude]
                    if not any(u.routable for u in replicas):
                        raise Unavailable(
                            f"no other replica of {model!r} is ready", code="upstream_unreachable",
                            retry_after_s=BUSY_RETRY_AFTER_S,
                        )
                decision = routing.admit(replicas, self._queued.get(model, 0), self.config.queue_size)
                if isinstance(decision, routing.Dispatch):
                    self.directory.begin_request(decision.upstream.name)
                    return decision.upstream
                if isinstance(decision, routing.Overloaded):
                    raise Overloaded(
                        f"every replica of {model!r} is busy and its queue is full; retry shortly",
                        code="queue_full", retry_after_s=BUSY_RETRY_AFTER_S,
                    )
                if isinstance(decision, routing.Enqueue):
                    if waits.queue_deadline is None:
                        waits.queue_deadline = self.clock() + self.config.request_timeout_s
                    await self._wait_for_slot(model, waits.queue_deadline)
                elif isinstance(decision, routing.Unavailable):
                    raise _unavailable(model, decision)
                else:
                    await self._await_start(model, replicas, decision, waits)
        finally:
            self._unawait(waits.awaited)

    async def until_up(self, model: str) -> Upstream:
        """A routable replica of `model`, not counted in flight (for reads such as router mode's
        `/props?model=`, which need no slot): one up now, else started and waited for as a
        request's would be (room made under max_loaded, `start_wait` obeyed)."""
        waits = _Waits()
        try:
            while True:
                replicas = routing.candidates(self.directory.upstreams(model), model)
                up = routing.pick_replica(replicas)
                if up is not None:
                    return up
                decision = routing.admit(replicas, 0, 0)  # none is routable: start, wait, or unavailable
                if isinstance(decision, routing.StartFirst | routing.AwaitStart):
                    await self._await_start(model, replicas, decision, waits)
                elif isinstance(decision, routing.Unavailable):
                    raise _unavailable(model, decision)
                else:
                    raise ModelNotFound(model, available_models(self.directory.upstreams()))  # replicas went away
        finally:
            self._unawait(waits.awaited)

    async def _await_start(
        self, model: str, replicas: list[Upstream], decision: routing.StartFirst | routing.AwaitStart, waits: _Waits
    ) -> None:
        """No replica of `model` is up yet: start one if asked (making room), then wait for it, or refuse."""
        self.stopping.check()  # nothing is started for a request that could not wait for it
        name = decision.name
        if waits.started:
            raise Unavailable(
                f"model {model!r} did not become ready within {self.config.start_wait_timeout_s:g} s",
                code="model_loading", retry_after_s=_loading_retry_after(replicas, name),
            )
        if waits.awaited != name:  # protect `name` from eviction while this request waits for it
            self._unawait(waits.awaited)
            waits.awaited = name
            self._awaited[name] = self._awaited.get(name, 0) + 1
        if isinstance(decision, routing.StartFirst) and not self._try_start(name, f"gateway request for {model}"):
            if self.config.start_wait == "reject":
                raise self._no_room(name)
            if waits.room_deadline is None:
                waits.room_deadline = self.clock() + self.config.start_wait_timeout_s
            await self._wait_for_room(name, waits.room_deadline)
            return
        if self.config.start_wait == "reject":
            retry = _loading_retry_after(replicas, name)
            raise Unavailable(
                f"model {model!r} is loading; retry in {retry} s", code="model_loading", retry_after_s=retry,
            )
        await self._wait_routable(name)
        waits.started = True

    def dispatch_now(self, model: str, upstreams: list[Upstream]) -> Upstream | None:
        """What `acquire` would return at once (a routable replica with a free slot, nobody
        queued), already counted in flight; None whenever it would wait or refuse."""
        replicas = routing.candidates(upstreams, model)
        if not replicas:
            return None
        decision = routing.admit(replicas, self._queued.get(model, 0), self.config.queue_size)
        if not isinstance(decision, routing.Dispatch):
            return None
        self.directory.begin_request(decision.upstream.name)
        return decision.upstream

    def release(self, name: str, evidence: Evidence = None) -> None:
        self.directory.end_request(name, evidence)
        if self._slot_waiters:
            waiters, self._slot_waiters = self._slot_waiters, set()
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    # --- starting and eviction -----------------------------------------------------------------
    def start(self, name: str, reason: str) -> None:
        """Ask for `name` once (concurrent first requests share one start), evicting to make room;
        raise 503 `capacity_exhausted` when there is no room (every loaded instance busy, pinned,
        awaited or within its minimum residency)."""
        if not self._try_start(name, reason):
            raise self._no_room(name)

    def preload(self, name: str, reason: str) -> asyncio.Task[bool] | None:
        """Start `name` if max_loaded has room for it without evicting anything (the daemon's `up`
        and autostart of a `preload` instance); None when it has not. The task ends once it is
        routable (True), or its start failed or timed out."""
        return self._start_waits[name] if self._try_start(name, reason, evict=False) else None

    def _try_start(self, name: str, reason: str, evict: bool = True) -> bool:
        """`start` without the refusal: False when no room can be made now (or, without `evict`,
        when making it would evict an instance)."""
        if name in self._start_waits:
            return True
        upstreams, budgets = self.directory.upstreams(), self.config.memory_budgets
        if budgets and (short := routing.never_fits(upstreams, name, budgets)):
            if not evict:
                return False
            raise _too_big(name, *short)
        victims = routing.choose_evictions(upstreams, self.config.max_loaded, {name, *self._start_waits},
                                           self._awaited, self.config.group_limits, budgets)
        if victims is None or (victims and not evict):
            return False
        limit = self.limit_words(name)
        for victim in victims:
            self.directory.request_stop(victim, f"evicted to start {name} ({limit})")
            self.evictions[victim] = self.evictions.get(victim, 0) + 1
        task = asyncio.ensure_future(self._start_after(name, reason, victims))
        self._start_waits[name] = task
        task.add_done_callback(lambda _t: self._start_waits.pop(name, None))
        return True

    async def _start_after(self, name: str, reason: str, victims: list[str]) -> bool:
        """Start `name` once the instances evicted for it have exited, then wait until it is routable.

        On a GPU, a model that loads while the evicted one still holds its memory can fail to
        allocate (llama-swap, too, stops before it starts). A victim that outlasts the start wait
        is not waited for any longer: the start goes ahead, and a failed load is retried as ever.
        """
        deadline = self.clock() + self.config.start_wait_timeout_s
        for victim in victims:
            if not await self.directory.wait_stopped(victim, max(0.0, deadline - self.clock())):
                logger.warning("starting %s although %s, evicted for it, has not exited yet", name, victim)
        self.directory.request_start(name, reason)
        return await self.directory.wait_routable(name, max(0.0, deadline - self.clock()))

    def _no_room(self, name: str, waited_s: float | None = None) -> Unavailable:
        after = "" if waited_s is None else f" for {waited_s:g} s"
        limit = self.limit_words(name)
        room_in = self._room_in_s({name})
        if room_in is not None:  # only a minimum residency keeps the room: say when it ends
            retry = max(1, math.ceil(room_in))
            return Unavailable(
                f"cannot start {name!r}: the instances up fill {limit} and none could be "
                f"evicted{after}; one can go in {retry} s, when its min_residency_s is over",
                code="capacity_exhausted", retry_after_s=retry,
            )
        return Unavailable(
            f"cannot start {name!r}: the instances up fill {limit} and every "
            f"one of them that could make room is serving requests, pinned or awaited{after}",
            code="capacity_exhausted", retry_after_s=LOADING_RETRY_AFTER_S,
        )

    def limit_words(self, name: str | None) -> str:
        """The limit that keeps `name` from starting, in the config's words: `group_limits.chat=1`
        when its group is full, `ram_budget_gib=8 (9.5GiB with it)` when its memory pool is,
        else `max_loaded=2`."""
        if name is not None:
            upstreams, starting = self.directory.upstreams(), {name, *self._start_waits}
            group = routing.full_group(upstreams, name, self.config.group_limits, starting)
            if group is not None:
                return f"group_limits.{group}={self.config.group_limits[group]}"
            over = routing.over_budget(upstreams, name, self.config.memory_budgets, starting)
            if over is not None:
                pool, held, budget = over
                return f"{pool}_budget_gib={budget / GIB:g} ({size(held)} with it)"
        return f"max_loaded={self.config.max_loaded}"

    def _room_in_s(self, starting: set[str]) -> float | None:
        return routing.room_in_s(self.directory.upstreams(), starting | self._start_waits.keys(), self._awaited)

    def _unawait(self, name: str | None) -> None:
        if name is None:
            return
        left = self._awaited[name] - 1
        if left:
            self._awaited[name] = left
        else:
            del self._awaited[name]

    async def _wait_routable(self, name: str) -> None:
        task = self._start_waits.get(name)
        if task is None:  # coming up by itself (starting, backoff): wait without starting
            await self.stopping.unless_closed(self.directory.wait_routable(name, self.config.start_wait_timeout_s))
            return
        await self.stopping.unless_closed(asyncio.shield(task))  # the start goes on for the other requests

    async def _wait_for_slot(self, model: str, deadline: float) -> None:
        left = deadline - self.clock()
        if left <= 0:
            raise Overloaded(
                f"no slot of {model!r} freed up within {self.config.request_timeout_s:g} s",
                code="queue_timeout", retry_after_s=BUSY_RETRY_AFTER_S,
            )
        self._queued[model] = self._queued.get(model, 0) + 1
        try:
            await self._wait_for_release(left)
        finally:
            self._queued[model] -= 1

    async def _wait_for_room(self, name: str, deadline: float) -> None:
        """Wait a while for a loaded instance to go idle (so `name` can evict it); raise 503 at `deadline`."""
        left = deadline - self.clock()
        if left <= 0:
            raise self._no_room(name, self.config.start_wait_timeout_s)
        await self._wait_for_release(left)

    async def _wait_for_release(self, left: float) -> None:
        """Until some request ends, `left` s pass, or QUEUE_RECHECK_S (whichever is first); 503
        shutting_down once the gateway stops (`close` wakes every waiter)."""
        self.stopping.check()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._slot_waiters.add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, min(left, QUEUE_RECHECK_S))
        finally:
            self._slot_waiters.discard(waiter)
        self.stopping.check()

    # --- idle TTL --------------------------------------------------------------------------------
    def reap_idle(self) -> list[str]:
        """Stop every instance idle past its TTL; return their names."""
        names = routing.idle_expired(self.directory.upstreams(), self.clock())
        for name in names:
            self.directory.request_stop(name, "idle TTL expired")
        return names

    async def idle_loop(self, interval_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.reap_idle()

    async def close(self) -> None:
        """The gateway stops: every request waiting (for a slot, a load, room) is refused with 503
        at once, before the connections close; the starts requested for them are abandoned."""
        self.stopping.close()
        for waiter in self._slot_waiters:
            if not waiter.done():
                waiter.set_result(None)
        for task in list(self._start_waits.values()):
            task.cancel()
        self._start_waits.clear()


@dataclass(slots=True)
class _Waits:
    """One request's progress through `Traffic.acquire`'s waits."""

    started: bool = False  # it waited for a start once: the next miss is a timeout
    queue_deadline: float | None = None  # waiting for a slot since
    room_deadline: float | None = None  # waiting for max_loaded room since
    awaited: str | None = None  # the instance it waits for, counted in `Traffic._awaited`


def _too_big(name: str, pool: str, need: int, kept: int, budget: int) -> Unavailable:
    beside = f" beside the {size(kept)} that instances never evicted (not on-demand, or pinned) hold" if kept else ""
    return Unavailable(
        f"cannot start {name!r}: it needs {size(need)}{beside}, more than gateway.{pool}_budget_gib="
        f"{budget / GIB:g} allows; raise the budget, or set the instance's memory_gib if that is more than "
        "it really holds", code="capacity_exhausted", retry_after_s=LOADING_RETRY_AFTER_S,
    )


def _unavailable(model: str, decision: routing.Unavailable) -> Unavailable:
    return Unavailable(f"model {model!r} is not available: {decision.reason}", code="model_unavailable",
                       retry_after_s=LOADING_RETRY_AFTER_S)


def _loading_retry_after(replicas: list[Upstream], name: str) -> int:
    """Retry-After for a request refused while `name` (one of `replicas`) loads."""
    return routing.loading_retry_after(next((u for u in replicas if u.name == name), None), LOADING_RETRY_AFTER_S)
