"""The gateway's front door: plain inference requests on the fast lane, everything else handed to
aiohttp on the same connection, with the same answers either way (fake llama-server processes)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from tests.integration.test_gateway_faults import CHAT, fake_server, serving
from tests.support.ports import free_port
from tests.support.waiting import async_wait_until
from tests.unit.gateway.gateway_fakes import StaticDirectory, upstream

from llama_orchestrator.config.models import RequestFilters
from llama_orchestrator.config.orchestrator import GatewayConfig
from llama_orchestrator.core.states import InstanceState as S
from llama_orchestrator.gateway.auth import Keyring, parse_keys_file
from llama_orchestrator.gateway.request_filters import rewriter
from llama_orchestrator.gateway.server import Gateway

pytestmark = pytest.mark.integration


def post(body: dict[str, object], *headers: str, path: str = "/v1/chat/completions", host: str = "gw") -> bytes:
    data = json.dumps(body).encode()
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json", *headers,
             f"Content-Length: {len(data)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 answer: status, headers (names lowercased) and the body (chunked or not)."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
    if headers.get("transfer-encoding") == "chunked":
        return int(head[0].split()[1]), headers, await read_answer_after_head(reader)
    return int(head[0].split()[1]), headers, await reader.readexactly(int(headers["content-length"]))


async def read_answer_after_head(reader: asyncio.StreamReader) -> bytes:
    out = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return out
        out += (await reader.readexactly(size + 2))[:-2]


def completion_tokens(body: bytes) -> int:
    """What the fake says it generated: from a JSON answer, or from a stream's last event."""
    if body.startswith(b"data:"):
        body = [e for e in body.split(b"\n\n") if e.startswith(b"data: {")][-1].removeprefix(b"data: ")
    return int(json.loads(body)["usage"]["completion_tokens"])


@asynccontextmanager
async def stand_in(
    answer: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
) -> AsyncIterator[int]:
    """A stand-in upstream on a free port (yielded): `answer` serves each connection, which closes
    when it returns or the gateway closes its side."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await answer(reader, writer)
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def read_request_body(reader: asyncio.StreamReader) -> bytes:
    """A stand-in upstream's side: one request's body (after its head, by its Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    return await reader.readexactly(length)


def answer_one_token(writer: asyncio.StreamWriter) -> None:
    """A stand-in upstream's answer: a chat completion of one token."""
    body = json.dumps({"object": "chat.completion", "usage": {"completion_tokens": 1}}).encode()
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                 % (len(body), body))


async def connect(gw: Gateway) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = gw.address.removeprefix("http://").rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


async def test_plain_requests_take_the_fast_lane_and_the_rest_go_to_aiohttp_on_the_same_connection(
    fake_server_cmd: list[str], tmp_path: Path
) -> None:
    with fake_server(fake_server_cmd, tmp_path, "tiny") as (port, _):
        async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{port}/v1/chat/completions", json={**CHAT, "model": "tiny", "stream": True}
        ) as direct:
            expected = [e for e in (await direct.read()).split(b"\n\n") if e.strip()]
        async with serving(GatewayConfig(), StaticDirectory([upstream("one", "tiny", port=port)])) as gw:
            reader, writer = await connect(gw)
            writer.write(post({**CHAT, "model": "tiny", "stream": True}))
            status, headers, body = await read_response(reader)
            assert status == 200 and headers["content-type"] == "text/event-stream"
            assert headers["x-llama-orch-source"] == "upstream" and headers["x-llama-orch-instance"] == "one"
            assert len([e for e in body.split(b"\n\n") if e.strip()]) == len(expected) and body.endswith(
                b"data: [DONE]\n\n")
            assert gw.lanes == {"fast": 1, "handed_off": 0}

            writer.write(b"GET /v1/models HTTP/1.1\r\nHost: gw\r\n\r\n")  # not an inference request
            status, headers, body = await read_response(reader)
            assert status == 200 and [m["id"] for m in json.loads(body)["data"]] == ["one", "tiny"]
            assert gw.lanes == {"fast": 1, "handed_off": 1}

            writer.write(post({**CHAT, "model": "tiny"}))  # aiohttp keeps the connection from now on
            status, headers, body = await read_response(reader)
            assert status == 200 and json.loads(body)["object"] == "chat.completion"
            assert headers["x-llama-orch-instance"] == "one"
            assert gw.lanes == {"fast": 1, "handed_off": 1}
            writer.close()


async def test_pipelined_requests_are_answered_in_order(fake_server_cmd: list[str], tmp_path: Path) -> None:
    with fake_server(fake_server_cmd, tmp_path, "tiny") as (port, _):
        async with serving(GatewayConfig(), StaticDirectory([upstream("one", "tiny", port=port)])) as gw:
            reader, writer = await connect(gw)
            writer.write(post({**CHAT, "model": "tiny", "stream": True, "max_tokens": 3})
                         + post({**CHAT, "model": "tiny", "max_tokens": 2})
                         + post({**CHAT, "model": "tiny", "stream": True, "max_tokens": 4}))
            answers = [await read_response(reader) for _ in range(3)]
            assert [a[0] for a in answers] == [200, 200, 200]
            assert [completion_tokens(a[2]) for a in answers] == [3, 2, 4]
            assert gw.lanes == {"fast": 3, "handed_off": 0}
            writer.close()


@pytest.mark.parametrize(("request_bytes", "status", "code"), [
    (post({**CHAT, "model": "tiny"}, "Authorization: Bearer wrong"), 401, "invalid_api_key"),
    (post({**CHAT, "model": "tiny"}, "Authorization: Bearer scoped"), 404, "model_not_found"),
    (post({**CHAT, "model": "tiny"}, "Authorization: Bearer good", path="/v1/chat/completions?x=1"), 200, None),
    (b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer good\r\nContent-Length: 5\r\n\r\n"
     b"{nope", 400, "invalid_json"),
    (b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer good\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n0\r\n\r\n" % (
         len(json.dumps({**CHAT, "model": "tiny"})), json.dumps({**CHAT, "model": "tiny"}).encode()), 200, None),
], ids=["wrong-key", "out-of-scope", "query-string", "bad-json", "chunked-body"])
async def test_requests_the_fast_lane_does_not_serve_get_aiohttps_answer(
    fake_server_cmd: list[str], tmp_path: Path, request_bytes: bytes, status: int, code: str | None
) -> None:
    keys = Keyring(tuple(parse_keys_file("good\nscoped other-model\n")))
    with fake_server(fake_server_cmd, tmp_path, "tiny") as (port, _):
        async with serving(GatewayConfig(), StaticDirectory([upstream("one", "tiny", port=port)]), keys) as gw:
            reader, writer = await connect(gw)
            writer.write(request_bytes)
            got, headers, body = await read_response(reader)
            assert got == status, body
            if code is not None:
                assert json.loads(body)["error"]["code"] == code and headers["x-llama-orch-source"] == "gateway"
            assert gw.lanes == {"fast": 0, "handed_off": 1}
            writer.close()


async def test_a_request_for_a_replica_at_its_slot_limit_waits_in_the_queue_on_the_fast_lane(
    fake_server_cmd: list[str], tmp_path: Path
) -> None:
    with fake_server(fake_server_cmd, tmp_path, "tiny", {"FAKE_TOKEN_DELAY": "0.05"}) as (port, _):
        directory = StaticDirectory([upstream("one", "tiny", port=port, slots=1)])
        async with serving(GatewayConfig(), directory) as gw:
            first_r, first_w = await connect(gw)
            first_w.write(post({**CHAT, "model": "tiny", "stream": True, "max_tokens": 6}))
            await first_r.readuntil(b"\r\n\r\n")  # the only slot is taken
            second_r, second_w = await connect(gw)
            second_w.write(post({**CHAT, "model": "tiny", "max_tokens": 2}))
            status, _, body = await read_response(second_r)  # queued until the first stream ends
            assert status == 200 and completion_tokens(body) == 2
            assert completion_tokens(await read_answer_after_head(first_r)) == 6
            assert gw.lanes == {"fast": 2, "handed_off": 0}
            first_w.close()
            second_w.close()


async def test_the_fast_lane_answers_what_waiting_ends_in_as_aiohttps_path_does(
    fake_server_cmd: list[str], tmp_path: Path
) -> None:
    """An unknown model (404), a full queue (429) and a model that is not up (503) are answered
    by the fast lane itself, in the same OpenAI shape and with the same Retry-After."""
    with fake_server(fake_server_cmd, tmp_path, "tiny", {"FAKE_TOKEN_DELAY": "0.05"}) as (port, _):
        directory = StaticDirectory([upstream("one", "tiny", port=port, slots=1),
                                     upstream("off", "off", port=port, state=S.FAILED)])
        async with serving(GatewayConfig(queue_size=0), directory) as gw:
            busy_r, busy_w = await connect(gw)
            busy_w.write(post({**CHAT, "model": "tiny", "stream": True, "max_tokens": 6}))
            await busy_r.readuntil(b"\r\n\r\n")  # the only slot is taken, and the queue holds none
            for body, status, code in (({**CHAT, "model": "nope"}, 404, "model_not_found"),
                                       ({**CHAT, "model": "tiny"}, 429, "queue_full"),
                                       ({**CHAT, "model": "off"}, 503, "model_unavailable")):
                reader, writer = await connect(gw)
                writer.write(post(body))
                got, headers, answer = await read_response(reader)
                assert (got, json.loads(answer)["error"]["code"]) == (status, code)
                assert headers["x-llama-orch-source"] == "gateway"
                assert ("retry-after" in headers) == (status != 404)
                writer.close()
            assert completion_tokens(await read_answer_after_head(busy_r)) == 6
            assert gw.lanes == {"fast": 4, "handed_off": 0}
            busy_w.close()


async def test_an_idle_fast_lane_connection_closes_when_the_gateway_stops(
    fake_server_cmd: list[str], tmp_path: Path
) -> None:
    with fake_server(fake_server_cmd, tmp_path, "tiny") as (port, _):
        gw = Gateway(GatewayConfig(port=free_port()), StaticDirectory([upstream("one", "tiny", port=port)]),
                     Keyring())
        await gw.start()
        reader, writer = await connect(gw)
        writer.write(post({**CHAT, "model": "tiny"}))
        assert (await read_response(reader))[0] == 200
        await gw.stop()
        assert await reader.read() == b""  # closed by the gateway, not left open
        writer.close()


async def test_the_idle_sweep_closes_stalled_connections_but_not_one_with_an_answer_in_progress(
    fake_server_cmd: list[str], tmp_path: Path
) -> None:
    with fake_server(fake_server_cmd, tmp_path, "tiny", {"FAKE_TOKEN_DELAY": "0.05"}) as (port, _):
        async with serving(GatewayConfig(), StaticDirectory([upstream("one", "tiny", port=port)])) as gw:
            stalled_r, stalled_w = await connect(gw)
            stalled_w.write(post({**CHAT, "model": "tiny"})[:30])  # half a head, then nothing
            busy_r, busy_w = await connect(gw)
            busy_w.write(post({**CHAT, "model": "tiny", "stream": True, "max_tokens": 20}))
            await busy_r.readuntil(b"\r\n\r\n")
            assert gw._lane is not None
            gw._lane.close_idle(0.0)  # what the sweep does after IDLE_CLOSE_S of silence
            assert await stalled_r.read() == b""
            assert completion_tokens(await read_answer_after_head(busy_r)) == 20
            busy_w.close()
            stalled_w.close()


@pytest.mark.parametrize("query", ["", "?lane=aiohttp"], ids=["fast-lane", "aiohttp"])
async def test_a_pooled_connection_the_upstream_dropped_is_retried_on_a_new_one(query: str) -> None:
    """The upstream answers on a keep-alive connection, then drops it when the next request comes
    (as a server closing an idle socket does, just as the gateway writes): the request never
    reached it, so it goes again on a new connection and the client sees nothing of it."""
    connections: list[int] = []  # requests answered per connection

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(0)
        mine = len(connections) - 1
        while True:
            await read_request_body(reader)
            if mine == 0 and connections[0] == 1:
                return  # the first connection's second request: dropped unanswered
            connections[mine] += 1
            answer_one_token(writer)

    async with stand_in(serve) as port, serving(GatewayConfig(), StaticDirectory([upstream("one", "m", port=port)])) \
            as gw:
        for _ in range(2):
            reader, writer = await connect(gw)  # a new client connection each time
            writer.write(post({**CHAT, "model": "m"}, path="/v1/chat/completions" + query))
            status, _, body = await read_response(reader)
            assert status == 200 and completion_tokens(body) == 1, body
            writer.close()
        assert connections == [1, 1]  # the second request went again, on a second connection
        assert gw.lanes == ({"fast": 0, "handed_off": 2} if query else {"fast": 2, "handed_off": 0})


@pytest.mark.parametrize("query", ["", "?lane=aiohttp"], ids=["fast-lane", "aiohttp"])
async def test_an_event_stream_the_upstream_does_not_chunk_reaches_the_client_whole(query: str) -> None:
    """llama-server always chunks its streams; a server that streams until it closes instead
    still gets its events through, framed by the gateway."""
    events = [b"data: {\"n\": %d}\n\n" % i for i in range(3)] + [b"data: [DONE]\n\n"]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_body(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
        for event in events:
            writer.write(event)
            await writer.drain()
            await asyncio.sleep(0.01)

    async with stand_in(serve) as port, serving(GatewayConfig(), StaticDirectory([upstream("one", "m", port=port)])) \
            as gw:
        reader, writer = await connect(gw)
        writer.write(post({**CHAT, "model": "m", "stream": True}, path="/v1/chat/completions" + query))
        status, headers, body = await read_response(reader)
        assert status == 200 and headers["transfer-encoding"] == "chunked"
        assert body == b"".join(events)
        assert gw.lanes == ({"fast": 0, "handed_off": 1} if query else {"fast": 1, "handed_off": 0})
        writer.close()


async def test_clients_leaving_the_queue_leave_nothing_counted(fake_server_cmd: list[str], tmp_path: Path) -> None:
    with fake_server(fake_server_cmd, tmp_path, "tiny", {"FAKE_TOKEN_DELAY": "0.05"}) as (port, _):
        directory = StaticDirectory([upstream("one", "tiny", port=port, slots=1)])
        async with serving(GatewayConfig(queue_size=5), directory) as gw:
            busy_r, busy_w = await connect(gw)
            busy_w.write(post({**CHAT, "model": "tiny", "stream": True, "max_tokens": 10}))
            await busy_r.readuntil(b"\r\n\r\n")  # the only slot is taken
            leaving = [await connect(gw) for _ in range(3)]
            for _, writer in leaving:
                writer.write(post({**CHAT, "model": "tiny"}))
            await async_wait_until(lambda: gw.traffic._queued.get("tiny") == 3, 5, message="3 requests queued")
            for _, writer in leaving:
                writer.close()  # gone while queued
            await async_wait_until(lambda: gw.traffic._queued.get("tiny") == 0, 5, message="the queue emptied")
            assert completion_tokens(await read_answer_after_head(busy_r)) == 10
            reader, writer = await connect(gw)
            writer.write(post({**CHAT, "model": "tiny", "max_tokens": 3}))
            status, _, body = await read_response(reader)
            assert status == 200 and completion_tokens(body) == 3
            assert directory.entries["one"].in_flight == 0 and directory.begun == ["one", "one"]
            writer.close()
            busy_w.close()


@pytest.mark.parametrize("query", ["", "?lane=aiohttp"], ids=["fast-lane", "aiohttp"])
async def test_request_filters_rewrite_the_body_routed_by_model_but_not_one_sent_to_the_instance_itself(
    query: str
) -> None:
    """`request_filters` (llama-swap's filters): the instance gets the body with the stripped
    fields gone and the set ones replaced, with a Content-Length that fits; its own routes
    under /instances/<name>/ get the body as the client sent it."""
    received: list[dict[str, object]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            received.append(json.loads(await read_request_body(reader)))
            answer_one_token(writer)

    filters = RequestFilters(strip_params=["top_p", "top_k"], set_params={"temperature": 0.6, "min_p": 0.05})
    sent = {**CHAT, "model": "m", "temperature": 1.5, "top_p": 0.2, "seed": 7}
    async with stand_in(serve) as port:
        one = upstream("one", "m", port=port, rewrite_body=rewriter(filters))
        async with serving(GatewayConfig(), StaticDirectory([one])) as gw:
            reader, writer = await connect(gw)
            for path in ("/v1/chat/completions" + query, "/instances/one/v1/chat/completions"):
                writer.write(post(sent, path=path))
                status, _, body = await read_response(reader)
                assert status == 200 and completion_tokens(body) == 1, body
            assert gw.lanes["fast"] == (0 if query else 1)
            writer.close()
    assert received[0] == {**CHAT, "model": "m", "seed": 7, "temperature": 0.6, "min_p": 0.05}
    assert received[1] == sent


async def test_one_tick_keeps_the_read_timeout_while_streams_are_in_flight_and_stops_after(
    fake_server_cmd: list[str], tmp_path: Path
) -> None:
    """The fast lane's read timeout is one timer for every exchange (Lane.watch_reads), not one per
    request: a stream whose tokens come slower than a tick but faster than the timeout is not cut,
    a wedged one is (504), and once nothing is in flight the tick stops, so an idle gateway has no
    timer waking it."""
    config = GatewayConfig(port=free_port(), request_timeout_s=1.0)  # a tick every 0.1 s
    with fake_server(fake_server_cmd, tmp_path, "tiny", {"FAKE_TOKEN_DELAY": "0.3"}) as (port, _):
        async with serving(config, StaticDirectory([upstream("one", "tiny", port=port)])) as gw:
            lane = gw._lane
            assert lane is not None
            reader, writer = await connect(gw)
            writer.write(post({**CHAT, "model": "tiny", "stream": True, "max_tokens": 5}))
            await reader.readuntil(b"\r\n\r\n")
            assert len(lane.reading) == 1 and lane._read_tick is not None
            assert completion_tokens(await read_answer_after_head(reader)) == 5  # 1.5 s in all, past the 1 s
            assert not lane.reading
            await async_wait_until(lambda: lane._read_tick is None, 5, message="the tick went on, nothing in flight")
            writer.close()
    with fake_server(fake_server_cmd, tmp_path, "tiny", {"FAKE_WEDGE": "1"}) as (port, _):
        async with serving(config, StaticDirectory([upstream("one", "tiny", port=port)])) as gw:
            reader, writer = await connect(gw)
            writer.write(post({**CHAT, "model": "tiny"}))
            status, headers, _ = await read_response(reader)
            assert status == 504 and headers["x-llama-orch-source"] == "gateway"
            assert gw.lanes["fast"] == 1
            writer.close()
