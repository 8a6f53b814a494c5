"""Traffic's waits over a StaticDirectory (no sockets): who may be evicted while requests wait."""

from __future__ import annotations

import asyncio

import pytest
from tests.unit.gateway.gateway_fakes import StaticDirectory, upstream

from llama_orchestrator.config.orchestrator import GatewayConfig
from llama_orchestrator.core.states import InstanceState as S
from llama_orchestrator.gateway.errors import Unavailable
from llama_orchestrator.gateway.traffic import Traffic


class WatchedDirectory(StaticDirectory):
    """Tells the test when a request has begun to wait for an instance to come up."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.waiting = asyncio.Event()
        self.started = asyncio.Event()

    def request_start(self, name: str, reason: str) -> None:
        super().request_start(name, reason)
        self.started.set()

    async def wait_routable(self, name: str, timeout_s: float) -> bool:
        self.waiting.set()
        return await super().wait_routable(name, timeout_s)


async def test_an_instance_a_request_waits_for_is_not_evicted_for_another_start() -> None:
    directory = WatchedDirectory([
        upstream("b", on_demand=True, state=S.STARTING),  # coming up (a restart, `up`): not the gateway's start
        upstream("c", on_demand=True, state=S.STOPPED),
    ])
    traffic = Traffic(GatewayConfig(max_loaded=1), directory)
    waiting = asyncio.ensure_future(traffic.acquire("b"))
    await directory.waiting.wait()
    with pytest.raises(Unavailable) as refused:
        traffic.start("c", "load c")  # b is idle but awaited: evicting it would waste its load
    assert refused.value.code == "capacity_exhausted" and "awaited" in str(refused.value)
    assert directory.stops == []
    directory.set("b", state=S.READY, routable=True)
    assert (await waiting).name == "b"
    with pytest.raises(Unavailable):
        traffic.start("c", "load c")  # b now serves the request
    traffic.release("b")
    traffic.start("c", "load c")  # idle and no longer awaited: it makes room
    assert directory.stops == [("b", "evicted to start c (max_loaded=1)")]
    assert directory.starts == []  # not while b still holds its memory
    directory.set("b", state=S.STOPPED, routable=False)  # b's process has exited
    await directory.started.wait()
    assert directory.starts == [("c", "load c")]
    await traffic.close()


class StopWatchedDirectory(StaticDirectory):
    """Tells the test when an instance has been asked to stop."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.stopped = asyncio.Event()

    def request_stop(self, name: str, reason: str) -> None:
        super().request_stop(name, reason)
        self.stopped.set()


async def test_min_residency_refuses_with_the_seconds_left_and_a_held_request_evicts_once_it_is_over() -> None:
    directory = StopWatchedDirectory([
        upstream("a", on_demand=True, up_for_s=2.0, min_residency_s=30.0),  # idle, loaded 2 s ago
        upstream("b", on_demand=True, state=S.STOPPED),
    ])
    rejecting = Traffic(GatewayConfig(max_loaded=1, start_wait="reject"), directory)
    with pytest.raises(Unavailable) as refused:
        await rejecting.acquire("b")
    assert refused.value.code == "capacity_exhausted" and refused.value.retry_after_s == 28
    assert "one can go in 28 s, when its min_residency_s is over" in str(refused.value)

    holding = Traffic(GatewayConfig(max_loaded=1), directory)
    waiting = asyncio.ensure_future(holding.acquire("b"))
    while holding.waiting == 0:  # the request is counted as waiting before its first look for room
        await asyncio.sleep(0)
    assert "a loaded model can go in 28 s, after its min_residency_s" in holding.what_holds("b")
    assert directory.stops == [] and not waiting.done()
    directory.set("a", up_for_s=30.0)  # its residency is over: the next look evicts it
    await directory.stopped.wait()
    assert directory.stops == [("a", "evicted to start b (max_loaded=1)")]
    waiting.cancel()
    await holding.close()


GIB = 1024 ** 3


async def test_a_memory_budget_evicts_for_a_start_and_says_so_and_refuses_a_model_that_never_fits() -> None:
    directory = StaticDirectory([
        upstream("embed", memory_bytes=1 * GIB),  # always on: counts, never evicted
        upstream("chat", on_demand=True, last_used=1.0, memory_bytes=3 * GIB),
        upstream("coder", on_demand=True, state=S.STOPPED, memory_bytes=2 * GIB),
        upstream("huge", on_demand=True, state=S.STOPPED, memory_bytes=5 * GIB),
    ])
    traffic = Traffic(GatewayConfig(ram_budget_gib=5), directory)
    assert traffic.preload("coder", "preload") is None  # 6 GiB with chat: a preload evicts nothing
    assert traffic.limit_words("coder") == "ram_budget_gib=5 (6.0GiB with it)"
    traffic.start("coder", "load coder")
    assert directory.stops == [("chat", "evicted to start coder (ram_budget_gib=5 (6.0GiB with it))")]
    with pytest.raises(Unavailable) as refused:
        traffic.start("huge", "load huge")
    assert refused.value.code == "capacity_exhausted"
    assert str(refused.value) == (
        "cannot start 'huge': it needs 5.0GiB beside the 1.0GiB that instances never evicted (not on-demand, "
        "or pinned) hold, more than gateway.ram_budget_gib=5 allows; raise the budget, or set the instance's "
        "memory_gib if that is more than it really holds")
    assert traffic.preload("huge", "preload") is None
    directory.stops.clear()
    directory.set("chat", in_flight=1)  # (its stop is the test's to carry out: still up) now serving a request
    rejecting = Traffic(GatewayConfig(ram_budget_gib=5, start_wait="reject"), directory)
    with pytest.raises(Unavailable) as busy:
        await rejecting.acquire("coder")
    assert str(busy.value) == ("cannot start 'coder': the instances up fill ram_budget_gib=5 (6.0GiB with it) and "
                               "every one of them that could make room is serving requests, pinned or awaited")
    assert directory.stops == []
    await rejecting.close()
    unlimited = Traffic(GatewayConfig(), directory)
    assert unlimited.preload("huge", "preload") is not None  # no budget, no limit
    await unlimited.close()
    await traffic.close()
