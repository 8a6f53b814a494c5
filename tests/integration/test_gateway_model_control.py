"""llama-server's router-mode model API on the gateway (POST /models/load and /models/unload):
who may call it, what it asks the directory for, and its errors (a recording directory)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.integration.test_gateway_faults import on_demand_dir, serving
from tests.support.waiting import async_wait_until
from tests.unit.gateway.gateway_fakes import StaticDirectory, upstream

from llama_orchestrator.config.orchestrator import GatewayConfig
from llama_orchestrator.core.states import InstanceState as S
from llama_orchestrator.gateway.auth import Keyring, parse_keys_file

pytestmark = pytest.mark.integration

KEYS = Keyring(tuple(parse_keys_file("admin\nscoped coder\n")))


def fleet() -> StaticDirectory:
    return StaticDirectory([
        upstream("coder", "coder", state=S.STOPPED, on_demand=True, last_used=5.0),
        upstream("chat", "chat", state=S.READY, on_demand=True, last_used=1.0),
        upstream("failed", "failed", state=S.FAILED),
    ])


async def call(http: aiohttp.ClientSession, url: str, body: object, key: str = "admin") -> tuple[int, Any]:
    async with http.post(url, json=body, headers={"Authorization": f"Bearer {key}"}) as resp:
        return resp.status, await resp.json()


async def test_load_starts_evicting_for_max_loaded_and_unload_stops() -> None:
    directory = fleet()
    async with serving(GatewayConfig(max_loaded=1), directory, KEYS) as gw, aiohttp.ClientSession() as http:
        assert await call(http, f"{gw.address}/models/load", {"model": "coder"}) == (200, {"success": True})
        assert directory.stops == [("chat", "evicted to start coder (max_loaded=1)")]  # the idle one made room
        assert directory.starts == []  # coder starts only once chat's process is gone
        directory.set("chat", state=S.STOPPED, routable=False)
        await async_wait_until(lambda: directory.starts == [("coder", "load requested (POST /models/load)")], 10,
                               message="coder started after chat stopped")
        directory.set("coder", state=S.READY, routable=True)
        assert await call(http, f"{gw.address}/models/load", {"model": "failed"}) == (200, {"success": True})
        assert directory.starts[-1][0] == "failed"  # a failed instance is tried again, as `start` would
        assert await call(http, f"{gw.address}/models/unload", {"model": "coder"}) == (200, {"success": True})
        assert directory.stops[-1] == ("coder", "unload requested (POST /models/unload)")
        stops = len(directory.stops)
        assert await call(http, f"{gw.address}/models/unload", {"model": "chat"}) == (200, {"success": True})
        assert len(directory.stops) == stops  # not running: nothing to stop


async def test_a_busy_fleet_refuses_a_load_it_has_no_room_for() -> None:
    directory = fleet()
    directory.set("chat", in_flight=1)  # serving a request: never evicted
    async with serving(GatewayConfig(max_loaded=1), directory, KEYS) as gw, aiohttp.ClientSession() as http:
        status, body = await call(http, f"{gw.address}/models/load", {"model": "coder"})
        assert status == 503 and body["error"]["code"] == "capacity_exhausted"
        assert directory.starts == [] and directory.stops == []


@pytest.mark.parametrize(("body", "key", "status", "code"), [
    ({"model": "chat"}, "wrong", 401, "invalid_api_key"),
    ({"model": "chat"}, "scoped", 404, "model_not_found"),  # out of the key's scope: as if absent
    ({"model": "nope"}, "admin", 404, "model_not_found"),
    ({"name": "chat"}, "admin", 400, "model_required"),
    ([1, 2], "admin", 400, "model_required"),
])
async def test_errors_name_what_is_wrong(body: object, key: str, status: int, code: str) -> None:
    directory = fleet()
    async with serving(GatewayConfig(), directory, KEYS) as gw, aiohttp.ClientSession() as http:
        for path in ("/models/load", "/models/unload"):
            got, answer = await call(http, f"{gw.address}{path}", body, key)
            assert (got, answer["error"]["code"]) == (status, code), path
        assert directory.starts == [] and directory.stops == []
        scoped_ok = await call(http, f"{gw.address}/models/load", {"model": "coder"}, "scoped")
        assert scoped_ok == (200, {"success": True})


async def test_models_sse_sends_every_status_then_each_change_and_ends_when_the_gateway_stops() -> None:
    directory = fleet()
    scoped = {"Authorization": "Bearer scoped"}
    async with serving(GatewayConfig(), directory, KEYS) as gw, aiohttp.ClientSession() as http, \
            http.get(f"{gw.address}/models/sse", headers=scoped) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
        lines = (line async for line in resp.content if line.startswith(b"data: "))

        async def event() -> Any:
            return json.loads((await anext(lines))[len(b"data: "):])

        # the scoped key sees its model only
        assert await event() == {"model": "coder", "event": "model_status", "data": {"status": "unloaded"}}
        directory.set("coder", state=S.STARTING)
        assert await event() == {"model": "coder", "event": "model_status", "data": {"status": "loading"}}
        directory.set("coder", state=S.READY)
        assert await event() == {"model": "coder", "event": "model_status", "data": {"status": "loaded"}}
        await gw.stop()
        assert [line async for line in resp.content if line.strip()] == []  # it ended: nothing more, no hang


async def test_router_gets_answer_from_the_named_models_own_routes_starting_it_unless_told_not_to(
    fake_server_cmd: list[str], tmp_path: Path,
) -> None:
    """Router mode's `GET /props?model=x` (llama.cpp's web UI reads a model's context size so),
    `/slots?model=x` and `/metrics?model=x`; `/props` alone says the gateway is a router."""
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 16)
    directory = on_demand_dir(fake_server_cmd, model, tmp_path, ["a", "b"])
    keys = Keyring(tuple(parse_keys_file("admin\nscoped b\n")))
    async with serving(GatewayConfig(), directory, keys) as gw, aiohttp.ClientSession() as http:
        async def get(path: str, key: str = "admin") -> tuple[int, Any]:
            async with http.get(gw.address + path, headers={"Authorization": f"Bearer {key}"}) as resp:
                return resp.status, await resp.json()

        status, props = await get("/props")
        assert status == 200 and props["role"] == "router" and props["max_instances"] == 2
        status, body = await get("/props?model=a&autoload=false")
        assert (status, body["error"]["code"]) == (400, "model_not_loaded") and directory.starts == []
        status, props = await get("/props?model=a")  # started first, as a request would start it
        assert status == 200 and props["model_alias"] == "a" and props["total_slots"] >= 1
        assert [name for name, _ in directory.starts] == ["a"]
        status, slots = await get("/slots?model=a&autoload=false")
        assert status == 200 and len(slots) == props["total_slots"]
        status, body = await get("/metrics?model=a")
        assert status == 501 and "--metrics" in body["error"]["message"]  # the fake's own answer, relayed
        status, body = await get("/slots")
        assert (status, body["error"]["code"]) == (400, "model_required")
        status, body = await get("/props?model=nope")
        assert status == 404 and "Available models: a, b" in body["error"]["message"]
        status, body = await get("/props?model=a", key="scoped")
        assert status == 404 and "Available models: b" in body["error"]["message"]
        status, body = await get("/props?model=a", key="wrong")
        assert status == 401
        assert [name for name, _ in directory.starts] == ["a"]


async def test_with_one_model_a_bare_props_is_its_own_once_up_and_a_probe_starts_nothing(
    fake_server_cmd: list[str], tmp_path: Path,
) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 16)
    directory = on_demand_dir(fake_server_cmd, model, tmp_path, ["a"])
    async with serving(GatewayConfig(), directory) as gw, aiohttp.ClientSession() as http:
        async def get(path: str) -> tuple[int, Any]:
            async with http.get(gw.address + path) as resp:
                return resp.status, await resp.json()

        assert (await get("/props"))[1]["role"] == "router"  # a is down: the gateway's own, a is not started
        status, body = await get("/slots")
        assert (status, body["error"]["code"]) == (400, "model_not_loaded") and directory.starts == []
        assert (await get("/props?model=a"))[1]["model_alias"] == "a"  # named: started, as a request would
        assert (await get("/props"))[1]["model_alias"] == "a"  # up now: a single server's /props is its own
        assert [name for name, _ in directory.starts] == ["a"]
