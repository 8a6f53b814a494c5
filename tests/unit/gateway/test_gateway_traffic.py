"""Traffic's waits over a StaticDirectory (no sockets): who may be evicted while requests wait."""

from __future__ import annotations

import asyncio

import pytest
from tests.unit.gateway.gateway_fakes import StaticDirectory, upstream

from llama_orchestrator.config.models import GatewayConfig
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
    assert directory.stops == [("b", "evicted to start c (max_loaded)")]
    assert directory.starts == []  # not while b still holds its memory
    directory.set("b", state=S.STOPPED, routable=False)  # b's process has exited
    await directory.started.wait()
    assert directory.starts == [("c", "load c")]
    await traffic.close()
