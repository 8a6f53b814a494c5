"""The gateway stopping with requests in it: each gets an answer before its connection closes.

A request waiting for a model to load, for a room to load it or for a slot gets 503
`shutting_down` in the OpenAI error shape, a stream in progress (or held with keep-alive comments)
ends with an SSE error event; and none of this keeps the gateway's stop waiting.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.integration.test_gateway_faults import (
    CHAT,
    LANES,
    assert_lane,
    fake_server,
    on_demand_dir,
    sse_events,
    started,
)
from tests.integration.test_gateway_front_door import read_request_body, stand_in
from tests.support.orch import Home
from tests.support.ports import free_port
from tests.support.waiting import async_wait_until, wait_until
from tests.unit.gateway.gateway_fakes import StaticDirectory, upstream

from llama_orchestrator.config.orchestrator import GatewayConfig
from llama_orchestrator.core.traffic_health import ANSWERED
from llama_orchestrator.gateway.server import Gateway

pytestmark = pytest.mark.integration

STOPS_WITHIN_S = 1.0  # the daemon's stop is not held up by the requests it answers


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 16)
    return model


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def stop_timed(gw: Gateway) -> float:
    began = time.monotonic()
    await gw.stop()
    return time.monotonic() - began


async def assert_shutting_down(resp: aiohttp.ClientResponse) -> None:
    assert resp.status == 503, await resp.text()
    assert resp.headers["X-Llama-Orch-Source"] == "gateway" and resp.headers["Retry-After"]
    error = (await resp.json())["error"]
    assert (error["code"], error["type"]) == ("shutting_down", "unavailable_error"), error
    assert "the gateway is shutting down" in error["message"], error


@LANES
async def test_a_request_held_while_its_model_loads_is_answered_503_when_the_gateway_stops(
    fake_server_cmd: list[str], model_file: Path, tmp_path: Path, http: aiohttp.ClientSession, query: str
) -> None:
    directory = on_demand_dir(fake_server_cmd, model_file, tmp_path, ["od2"], {"FAKE_LOAD_SECONDS": "60"})
    gw = await started(GatewayConfig(start_wait_timeout_s=60), directory)
    try:
        url = gw.address + "/v1/chat/completions" + query
        pending = asyncio.ensure_future(http.post(url, json={**CHAT, "model": "od2"}))
        await async_wait_until(lambda: gw.traffic.waiting == 1, 10, message="the request held for the load")
        stopped_in = await stop_timed(gw)
        async with await pending as resp:
            await assert_shutting_down(resp)
        assert stopped_in < STOPS_WITHIN_S
        assert_lane(gw, query, 1)
        assert gw.traffic.waiting == 0 and directory.entries["od2"].in_flight == 0
    finally:
        await gw.stop()
        await directory.close()


@LANES
async def test_a_request_waiting_for_room_to_load_is_answered_503_when_the_gateway_stops(
    fake_server_cmd: list[str], model_file: Path, tmp_path: Path, http: aiohttp.ClientSession, query: str
) -> None:
    """max_loaded=1 is full of a model serving a stream: the other model's request waits for room."""
    directory = on_demand_dir(fake_server_cmd, model_file, tmp_path, ["a", "b"], {"FAKE_TOKEN_DELAY": "0.05"})
    gw = await started(GatewayConfig(max_loaded=1, start_wait_timeout_s=60), directory)
    try:
        url = gw.address + "/v1/chat/completions" + query
        async with http.post(url, json={**CHAT, "model": "a", "stream": True, "max_tokens": 100000}) as stream:
            await stream.content.readuntil(b"\n\n")
            pending = asyncio.ensure_future(http.post(url, json={**CHAT, "model": "b"}))
            await async_wait_until(lambda: gw.traffic.waiting == 1, 10, message="the request waiting for room")
            stopped_in = await stop_timed(gw)
            rest = await stream.content.read()
        assert b"the gateway is shutting down" in rest.rstrip().split(b"\n\n")[-1]
        async with await pending as resp:
            await assert_shutting_down(resp)
        assert stopped_in < STOPS_WITHIN_S
        assert [name for name, _ in directory.starts] == ["a"]  # b was never started
    finally:
        await gw.stop()
        await directory.close()


@LANES
async def test_a_queued_request_is_answered_503_and_a_stream_ends_with_an_error_event_when_the_gateway_stops(
    fake_server_cmd: list[str], tmp_path: Path, http: aiohttp.ClientSession, query: str
) -> None:
    with fake_server(fake_server_cmd, tmp_path, "tiny", {"FAKE_TOKEN_DELAY": "0.05"}) as (port, _):
        directory = StaticDirectory([upstream("one", "tiny", port=port, slots=1)])
        gw = await started(GatewayConfig(queue_size=1), directory)
        try:
            url = gw.address + "/v1/chat/completions" + query
            async with http.post(url, json={**CHAT, "model": "tiny", "stream": True, "max_tokens": 100000}) as stream:
                await stream.content.readuntil(b"\n\n")
                pending = asyncio.ensure_future(http.post(url, json={**CHAT, "model": "tiny"}))
                await async_wait_until(lambda: gw.traffic.waiting == 1, 10, message="the request queued")
                stopped_in = await stop_timed(gw)
                rest = await stream.content.read()
            last = rest.rstrip().split(b"\n\n")[-1]
            assert last.startswith(b"event: error\ndata: ") and b"the gateway is shutting down" in last, rest[-300:]
            async with await pending as resp:
                await assert_shutting_down(resp)
            assert stopped_in < STOPS_WITHIN_S
            assert directory.begun == ["one"] and directory.entries["one"].in_flight == 0  # the queued one never ran
        finally:
            await gw.stop()


async def test_a_held_stream_ends_with_an_error_event_when_the_gateway_stops(
    fake_server_cmd: list[str], model_file: Path, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """Its answer began (200, keep-alive comments) before its model was up: the error is an event."""
    directory = on_demand_dir(fake_server_cmd, model_file, tmp_path, ["od2"], {"FAKE_LOAD_SECONDS": "60"})
    gw = await started(GatewayConfig(start_wait_timeout_s=60, hold_keepalive_s=0.1), directory)
    try:
        async with http.post(gw.address + "/v1/chat/completions",
                             json={**CHAT, "model": "od2", "stream": True}) as resp:
            assert (await resp.content.readuntil(b"\n\n")).startswith(b": loading model 'od2'")
            stopped_in = await stop_timed(gw)
            events = await sse_events(resp)
        assert events[-1].startswith(b"event: error\ndata: "), events
        error = json.loads(events[-1].split(b"data: ", 1)[1])["error"]
        assert error["code"] == "shutting_down" and "the gateway is shutting down" in error["message"], error
        assert stopped_in < STOPS_WITHIN_S
    finally:
        await gw.stop()
        await directory.close()


@LANES
async def test_a_request_in_progress_is_answered_503_without_blaming_its_instance_when_the_gateway_stops(
    fake_server_cmd: list[str], tmp_path: Path, http: aiohttp.ClientSession, query: str
) -> None:
    """A plain (not streamed) answer comes whole at the end: the stop cuts the request before it
    (on either lane), the client hears why, and the instance is not blamed for it."""
    with fake_server(fake_server_cmd, tmp_path, "tiny", {"FAKE_TOKEN_DELAY": "0.05"}) as (port, _):
        directory = StaticDirectory([upstream("one", "tiny", port=port)])
        gw = await started(GatewayConfig(), directory)
        try:
            url = gw.address + "/v1/chat/completions" + query
            pending = asyncio.ensure_future(http.post(url, json={**CHAT, "model": "tiny", "max_tokens": 100000}))
            await async_wait_until(lambda: directory.entries["one"].in_flight == 1, 10, message="the request sent")
            stopped_in = await stop_timed(gw)
            async with await pending as resp:
                await assert_shutting_down(resp)
            assert stopped_in < STOPS_WITHIN_S
            assert directory.begun == ["one"] and directory.ended == [("one", None)]
        finally:
            await gw.stop()


@LANES
async def test_an_answer_cut_short_by_the_stop_says_the_gateway_stops_not_that_the_instance_failed(
    http: aiohttp.ClientSession, query: str
) -> None:
    async def half_an_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_body(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"choices"')
        await reader.read()  # the rest never comes: until the gateway closes its side

    async with stand_in(half_an_answer) as port:
        directory = StaticDirectory([upstream("one", "tiny", port=port)])
        gw = await started(GatewayConfig(), directory)
        try:
            pending = asyncio.ensure_future(http.post(gw.address + "/v1/chat/completions" + query,
                                                      json={**CHAT, "model": "tiny"}))
            await async_wait_until(lambda: any(up.head_done for up in gw._live), 10, message="the head relayed")
            stopped_in = await stop_timed(gw)
            async with await pending as resp:
                await assert_shutting_down(resp)
            assert stopped_in < STOPS_WITHIN_S
            assert directory.ended == [("one", ANSWERED)]  # it answered; it did not fail
        finally:
            await gw.stop()


def test_daemon_stop_answers_a_request_held_while_an_on_demand_instance_loads(tmp_path: Path) -> None:
    """The acceptance pass's case: curl held for `od2` (12 s to load), `llama-orch daemon stop`
    meanwhile; curl got no reply at all (exit 52) instead of the gateway's 503."""
    home = Home(tmp_path / "home", tmp_path / "scratch")
    gateway_port = free_port()
    home.paths.orchestrator_file.write_text(json.dumps({"gateway": {"port": gateway_port}}))
    model = tmp_path / "fake.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 64)
    home.write_instance("od2", model=model, port=free_port(), binary=home.fake_binary(),
                        env={"FAKE_LOAD_SECONDS": "12"}, on_demand=True)

    def chat() -> tuple[int, str, dict[str, Any]]:
        body = json.dumps({**CHAT, "model": "od2"}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{gateway_port}/v1/chat/completions", body,
                                         {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                return resp.status, resp.headers.get("X-Llama-Orch-Source", ""), json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("X-Llama-Orch-Source", ""), json.loads(exc.read())

    try:
        home.start_daemon()
        wait_until(lambda: home.client().status().gateway.address, 30, 0.05, "the gateway listening")
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(chat)
            wait_until(lambda: home.status("od2").state == "starting", 15, message="od2 loading for the request")
            home.ok("daemon", "stop")
            status, source, body = answer.result(timeout=30)
        assert (status, source, body["error"]["code"]) == (503, "gateway", "shutting_down"), body
        assert "the gateway is shutting down" in body["error"]["message"], body
    finally:
        home.close()
