"""The gateway against fake llama-servers: routing, errors, auth, lifecycle from traffic, faults.

Every server is a real process (tests/bin/fake_llama_server.py) on a loopback port; the
directory is a test fake (StaticDirectory / ProcessDirectory), the daemon's comes later.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.support.ports import free_port
from tests.support.procs import kill_group, running
from tests.support.waiting import async_wait_until, wait_until
from tests.unit.gateway.gateway_fakes import ProcessDirectory, StaticDirectory, upstream

from llama_orchestrator.config.orchestrator import GatewayConfig
from llama_orchestrator.core.states import InstanceState as S
from llama_orchestrator.gateway.auth import Keyring, load_keyring, parse_keys_file
from llama_orchestrator.gateway.errors import GatewayStartError
from llama_orchestrator.gateway.server import MAX_BODY, Gateway

pytestmark = pytest.mark.integration

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


def fake_cmd(fake_server_cmd: list[str], port: int, alias: str, *extra: str) -> list[str]:
    return [*fake_server_cmd, "--host", "127.0.0.1", "--port", str(port), "-m", "/dev/null.gguf",
            "--alias", alias, *extra]


def health_ok(port: int, status: int = 200) -> bool:
    """GET /health answers `status` (503 while a fake loads)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 %d" % status)
    except OSError:
        return False


async def assert_all_served_by(http: aiohttp.ClientSession, url: str, model: str, instance: str) -> None:
    """Three plain and three streamed requests for `model`, every one answered 200 by `instance`."""
    for body in ({**CHAT, "model": model}, {**CHAT, "model": model, "stream": True}):
        for _ in range(3):
            async with http.post(url, json=body) as resp:
                assert resp.status == 200, await resp.text()
                assert resp.headers["X-Llama-Orch-Instance"] == instance
                await resp.read()


@contextmanager
def fake_server(fake_server_cmd: list[str], tmp_path: Path, alias: str, env: dict[str, str] | None = None,
                *extra: str, wait: bool = True) -> Iterator[tuple[int, object]]:
    port = free_port()
    full_env = {**os.environ, **(env or {})}
    # The fake checks the GGUF magic: give it a file that has it.
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 16)
    cmd = [c if c != "/dev/null.gguf" else str(model) for c in fake_cmd(fake_server_cmd, port, alias, *extra)]
    with running(cmd, full_env, tmp_path / f"fake-{alias}-{port}.log") as proc:
        if wait:
            wait_until(lambda: health_ok(port), 15, message=f"fake {alias} ready")
        yield port, proc


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 16)
    return model


async def started(config: GatewayConfig, directory: object, keys: Keyring | None = None,
                  **kw: float) -> Gateway:
    gw = Gateway(config.model_copy(update={"port": free_port()}), directory, keys or Keyring(), **kw)  # type: ignore[arg-type]
    await gw.start()
    return gw


@asynccontextmanager
async def serving(config: GatewayConfig, directory: object, keys: Keyring | None = None,
                  **kw: float) -> AsyncIterator[Gateway]:
    """A started gateway, stopped on the way out (and the fake servers of a ProcessDirectory ended)."""
    gw = await started(config, directory, keys, **kw)
    try:
        yield gw
    finally:
        await gw.stop()
        if isinstance(directory, ProcessDirectory):
            await directory.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# Each fault on both lanes: a plain request is forwarded by the front door (gateway.exchange), the
# same request with a query string by aiohttp's handler (gateway.proxy); the answers must match.
LANES = pytest.mark.parametrize("query", ["", "?lane=aiohttp"], ids=["fast-lane", "aiohttp"])


def assert_lane(gw: Gateway, query: str, requests: int) -> None:
    assert gw.lanes == ({"fast": 0, "handed_off": requests} if query else {"fast": requests, "handed_off": 0})


async def evidence(directory: StaticDirectory, count: int) -> list[tuple[str, str | None]]:
    """What the gateway told the directory of the `count` requests it ended (passive health)."""
    await async_wait_until(lambda: len(directory.ended) == count, 5, message=f"{count} request(s) ended")
    return directory.ended


async def sse_events(resp: aiohttp.ClientResponse) -> list[bytes]:
    raw = await resp.read()
    return [e for e in raw.split(b"\n\n") if e.strip()]


# --- routing, shapes, native routes ----------------------------------------------------------------


async def test_routes_by_name_and_alias_streams_and_lists(
    fake_server_cmd: list[str], tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    with fake_server(fake_server_cmd, tmp_path, "tiny", None, "--metrics") as (port, _):
        direct = f"http://127.0.0.1:{port}"
        directory = StaticDirectory([upstream("one", "tiny", port=port, metrics=True)])
        async with serving(GatewayConfig(), directory) as gw:
            base = gw.address
            async with http.post(base + "/v1/chat/completions", json={**CHAT, "model": "one"}) as resp:
                assert resp.status == 200
                assert resp.headers["X-Llama-Orch-Instance"] == "one"
                assert (await resp.json())["choices"][0]["message"]["content"]
            body = {**CHAT, "model": "tiny", "stream": True, "max_tokens": 20}
            async with http.post(base + "/v1/chat/completions", json=body) as resp:
                assert resp.headers["Content-Type"].startswith("text/event-stream")
                assert resp.headers["X-Accel-Buffering"] == "no"
                via = await sse_events(resp)
            async with http.post(direct + "/v1/chat/completions", json=body) as resp:
                plain = await sse_events(resp)
            assert len(via) == len(plain) == 20 + 3 and via[-1] == b"data: [DONE]"
            # no model field, one model served: it is used
            async with http.post(base + "/v1/completions", json={"prompt": "x", "max_tokens": 2}) as resp:
                assert resp.status == 200
            async with http.get(base + "/v1/models") as resp:
                models = await resp.json()
            assert [(m["id"], m["state"], m["owned_by"]) for m in models["data"]] == [
                ("one", "ready", "llama-orchestrator"), ("tiny", "ready", "llama-orchestrator")]
            async with http.get(base + "/instances/one/props") as resp:
                assert (await resp.json())["model_alias"] == "tiny"
            async with http.post(base + "/instances/one/tokenize", json={"content": "ab"}) as resp:
                assert (await resp.json())["tokens"] == [100, 101]
            async with http.get(base + "/instances/one/slots") as resp:
                assert resp.status == 200 and len(await resp.json()) == 4
            async with http.get(base + "/metrics") as resp:
                text = await resp.text()
            assert 'llama_orch_gateway_requests_total{model="tiny",route="/v1/chat/completions",status="200"} 1' in text
            assert 'llamacpp:tokens_predicted_total{instance="one",model="tiny"}' in text
            assert 'llama_orch_instance_state{instance="one",state="ready"} 1' in text
            assert directory.entries["one"].in_flight == 0


async def test_a_request_without_a_model_goes_to_the_default_model_else_400_saying_how_to_set_one(
    fake_server_cmd: list[str], tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """llama.cpp's web UI and clients of its native API (TabbyML's /completion) send no `model`."""
    with (
        fake_server(fake_server_cmd, tmp_path, "chat") as (chat_port, _),
        fake_server(fake_server_cmd, tmp_path, "code") as (code_port, _),
    ):
        directory = StaticDirectory([upstream("chat", port=chat_port), upstream("coder", "code", port=code_port)])

        async def instance(base: str, path: str, body: dict[str, object]) -> tuple[int, str, Any]:
            async with http.post(base + path, json=body) as resp:
                return resp.status, resp.headers.get("X-Llama-Orch-Instance", ""), await resp.json()

        async with serving(GatewayConfig(), directory) as gw:
            status, _, body = await instance(gw.address, "/completion", {"prompt": "x", "n_predict": 2})
            assert (status, body["error"]["code"]) == (400, "model_required")
            assert body["error"]["message"].endswith(
                "choose one of: chat, code, coder (or set gateway.default_model in orchestrator.json)")
        async with serving(GatewayConfig(default_model="code"), directory) as gw:  # an alias
            for path, request in (("/completion", {"prompt": "x", "n_predict": 2}),  # the fast lane ...
                                  ("/v1/chat/completions", {**CHAT, "model": ""}),
                                  ("/v1/chat/completions?x=1", CHAT)):  # ... and aiohttp's path
                status, served_by, _ = await instance(gw.address, path, request)
                assert (path, status, served_by) == (path, 200, "coder")
            status, served_by, _ = await instance(gw.address, "/v1/chat/completions", {**CHAT, "model": "chat"})
            assert (status, served_by) == (200, "chat")  # a named model still goes where it says
            async with http.get(gw.address + "/props") as resp:
                assert (await resp.json())["model_alias"] == "code"  # the default's own, while it is up
        async with serving(GatewayConfig(default_model="gone"), directory) as gw:
            status, _, body = await instance(gw.address, "/completion", {"prompt": "x"})
            assert status == 404 and "'gone' does not exist" in body["error"]["message"]


async def test_an_unlisted_instance_is_served_but_not_offered(
    fake_server_cmd: list[str], tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """llama-swap's `unlisted`: an embedding model a chat UI should not offer in its model picker."""
    with fake_server(fake_server_cmd, tmp_path, "tiny") as (port, _):
        directory = StaticDirectory([upstream("chat", "tiny", port=port),
                                     upstream("embed", "nomic", port=port, listed=False)])
        async with serving(GatewayConfig(), directory) as gw:
            async with http.get(gw.address + "/v1/models") as resp:
                assert [m["id"] for m in (await resp.json())["data"]] == ["chat", "tiny"]
            async with http.get(gw.address + "/models") as resp:
                assert [m["id"] for m in (await resp.json())["data"]] == ["chat", "tiny"]
            async with http.get(gw.address + "/v1/models/nomic") as resp:  # asked for by name: there
                assert resp.status == 200 and (await resp.json())["instances"] == ["embed"]
            async with http.post(gw.address + "/v1/chat/completions", json={**CHAT, "model": "nomic"}) as resp:
                assert resp.status == 200 and resp.headers["X-Llama-Orch-Instance"] == "embed"
            async with http.post(gw.address + "/v1/chat/completions", json={**CHAT, "model": "nope"}) as resp:
                assert resp.status == 404
                message = (await resp.json())["error"]["message"]
            assert "chat, tiny" in message and "nomic" not in message and "embed" not in message


@LANES
async def test_requests_for_models_not_served_add_no_metrics_series(
    fake_server_cmd: list[str], tmp_path: Path, http: aiohttp.ClientSession, query: str
) -> None:
    """Each model name a client made up was a label value kept until the daemon restarted."""
    with fake_server(fake_server_cmd, tmp_path, "tiny") as (port, _):
        async with serving(GatewayConfig(), StaticDirectory([upstream("one", "tiny", port=port)])) as gw:
            url = gw.address + "/v1/chat/completions" + query
            for n in range(20):
                async with http.post(url, json={**CHAT, "model": f"made-up-{n}"}) as resp:
                    assert resp.status == 404 and (await resp.json())["error"]["code"] == "model_not_found"
            async with http.post(url, json={**CHAT, "model": "tiny"}) as resp:
                assert resp.status == 200
            async with http.get(gw.address + "/metrics") as resp:
                text = await resp.text()
            assert "made-up" not in text
            path = "/v1/chat/completions"
            assert f'llama_orch_gateway_requests_total{{model="(unknown)",route="{path}",status="404"}} 20' in text
            assert f'llama_orch_gateway_requests_total{{model="tiny",route="{path}",status="200"}} 1' in text
            assert 'llama_orch_gateway_errors_total{model="(unknown)",source="gateway"} 20' in text


async def test_errors_are_openai_shaped_and_say_who_produced_them(
    fake_server_cmd: list[str], tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    with fake_server(fake_server_cmd, tmp_path, "tiny") as (port, _):
        dead_port = free_port()
        directory = StaticDirectory([
            upstream("one", "tiny", port=port), upstream("two", "other", port=port),
            upstream("gone", "gone", port=dead_port), upstream("off", "off", state=S.STOPPED),
        ])
        async with serving(GatewayConfig(), directory) as gw:
            base = gw.address
            async with http.post(base + "/v1/chat/completions", json={**CHAT, "model": "nope"}) as resp:
                body = await resp.json()
                assert resp.status == 404 and resp.headers["X-Llama-Orch-Source"] == "gateway"
                assert body["source"] == "gateway" and body["error"]["code"] == "model_not_found"
                assert "gone, off, one, other, tiny, two" in body["error"]["message"]
            async with http.post(base + "/v1/chat/completions", json=CHAT) as resp:
                assert resp.status == 400 and (await resp.json())["error"]["param"] == "model"
            async with http.post(base + "/v1/chat/completions", data=b"{not json") as resp:
                assert resp.status == 400
            # llama-server's own error passes through unchanged
            async with http.post(base + "/v1/embeddings", json={"model": "tiny", "input": "x"}) as resp:
                assert resp.status == 501 and resp.headers["X-Llama-Orch-Source"] == "upstream"
                assert (await resp.json())["error"]["type"] == "not_supported_error"
            async with http.post(base + "/v1/chat/completions", json={**CHAT, "model": "gone"}) as resp:
                assert resp.status == 503 and resp.headers["Retry-After"]
                assert (await resp.json())["error"]["code"] == "upstream_unreachable"
            async with http.post(base + "/v1/chat/completions", json={**CHAT, "model": "off"}) as resp:
                assert resp.status == 503 and "llama-orch up off" in (await resp.json())["error"]["message"]
            async with http.get(base + "/instances/one/secret") as resp:  # any route: llama-server's own 404
                assert resp.status == 404 and resp.headers["X-Llama-Orch-Source"] == "upstream"
            async with http.get(base + "/instances/one?x=1", allow_redirects=False) as resp:
                assert resp.status == 308 and resp.headers["Location"] == "/instances/one/?x=1"
            async with http.get(base + "/instances/one/", headers={"Accept-Encoding": "gzip"}) as resp:
                assert resp.headers["Content-Encoding"] == "gzip" and "llama.cpp" in await resp.text()
            async with http.head(base + "/instances/one/health") as resp:
                assert resp.status == 200 and await resp.read() == b""
            async with http.get(base + "/instances/ghost/health") as resp:
                assert resp.status == 404 and (await resp.json())["error"]["code"] == "instance_not_found"
            async with http.get(base + "/no/such/route") as resp:
                assert resp.status == 404 and (await resp.json())["error"]["code"] == "route_not_found"
            async with http.get(base + "/v1/chat/completions") as resp:
                assert resp.status == 405 and resp.headers["Allow"] == "POST"
                assert (await resp.json())["error"]["code"] == "method_not_allowed"
            async with http.head(base + "/health") as resp:
                assert resp.status == 200
            too_big = b'{"model": "tiny", "prompt": "' + b"x" * MAX_BODY + b'"}'
            async with http.post(base + "/v1/completions", data=too_big) as resp:
                assert resp.status == 413 and (await resp.json())["source"] == "gateway"


async def test_keys_bearer_x_api_key_scopes_and_public_health(
    fake_server_cmd: list[str], tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    with fake_server(fake_server_cmd, tmp_path, "tiny") as (port, _):
        directory = StaticDirectory([upstream("one", "tiny", port=port), upstream("two", "other", port=port)])
        keys = Keyring(tuple(parse_keys_file("all-key\nscoped-key tiny\n")))
        async with serving(GatewayConfig(), directory, keys) as gw:
            url = gw.address + "/v1/chat/completions"
            async with http.post(url, json={**CHAT, "model": "tiny"}) as resp:
                assert resp.status == 401 and (await resp.json())["error"]["type"] == "authentication_error"
            async with http.post(url, json={**CHAT, "model": "tiny"}, headers={"Authorization": "Bearer wrong"}) as r:
                assert r.status == 401
            async with http.post(url, json={**CHAT, "model": "tiny"}, headers={"X-Api-Key": "scoped-key"}) as r:
                assert r.status == 200
            async with http.post(url, json={**CHAT, "model": "one"}, headers={"X-Api-Key": "scoped-key"}) as r:
                assert r.status == 200  # the instance behind the alias
            async with http.post(url, json={**CHAT, "model": "other"}, headers={"X-Api-Key": "scoped-key"}) as r:
                assert r.status == 404
            bearer = {"Authorization": "Bearer all-key"}
            async with http.post(url, json={**CHAT, "model": "other"}, headers=bearer) as r:
                assert r.status == 200
            async with http.get(gw.address + "/v1/models", headers={"X-Api-Key": "scoped-key"}) as r:
                assert [m["id"] for m in (await r.json())["data"]] == ["one", "tiny"]
            async with http.get(gw.address + "/instances/one/slots") as r:
                assert r.status == 401
            async with http.get(gw.address + "/metrics") as r:
                assert r.status == 401
            async with http.get(gw.address + "/health") as r:
                assert r.status == 200
            async with http.get(gw.address + "/instances/one/health") as r:
                assert r.status == 200
            async with http.get(gw.address + "/instances/one/") as r:  # the web UI's page, public as in llama-server
                assert r.status == 200
            async with http.get(gw.address + "/instances/one/props") as r:  # what the page then asks for is not
                assert r.status == 401
            async with http.post(gw.address + "/instances/one/", json={}) as r:  # nor anything but reading it
                assert r.status == 401


async def test_keys_that_cannot_be_read_refuse_every_request_until_a_reconfigure_reads_them(
    fake_server_cmd: list[str], tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    keys_file = tmp_path / "keys.txt"  # named, but not there: the gateway must not serve without a key check
    config = GatewayConfig(port=free_port(), api_keys_file=str(keys_file))
    with fake_server(fake_server_cmd, tmp_path, "tiny") as (port, _):
        gw = Gateway(config, StaticDirectory([upstream("one", "tiny", port=port)]))
        await gw.start()
        try:
            async def answer(method: str, path: str, key: str | None) -> tuple[int, dict[str, Any]]:
                headers = {"Authorization": f"Bearer {key}"} if key else {}
                body = {**CHAT, "model": "tiny"} if method == "POST" else None
                async with http.request(method, gw.address + path, json=body, headers=headers) as resp:
                    return resp.status, await resp.json()

            assert gw.refusing is not None and str(keys_file) in gw.refusing
            for method, path in [("POST", "/v1/chat/completions"), ("POST", "/v1/chat/completions?lane=aiohttp"),
                                 ("GET", "/v1/models"), ("GET", "/api/tags"), ("GET", "/instances/one/props")]:
                for key in (None, "wrong"):
                    status, body = await answer(method, path, key)
                    assert status == 401, (method, path, body)
                    if isinstance(body["error"], str):  # Ollama's shape (/api/...)
                        message = body["error"]
                    else:
                        assert body["error"]["code"] == "api_keys_unreadable"
                        message = body["error"]["message"]
                    assert "keys could not be read" in message and str(keys_file) in message
                    assert "No such file" in message and "llama-orch up" in message
            assert (await answer("GET", "/health", None))[0] == 200

            keys_file.write_text("good-key\n")  # fixed; the next command that reads the configs applies it
            assert gw.reconfigure(gw.config) == []
            assert gw.refusing is None
            assert (await answer("POST", "/v1/chat/completions", "good-key"))[0] == 200
            status, body = await answer("POST", "/v1/chat/completions", "wrong")
            assert status == 401 and body["error"]["code"] == "invalid_api_key"

            keys_file.unlink()  # unreadable again: the keys read before stay (a broken file keeps them)
            with pytest.raises(GatewayStartError, match="cannot read"):
                gw.reconfigure(gw.config)
            assert gw.refusing is None
            assert (await answer("POST", "/v1/chat/completions", "good-key"))[0] == 200
            assert (await answer("POST", "/v1/chat/completions", "wrong"))[0] == 401
        finally:
            await gw.stop()


async def test_an_open_gateway_told_to_use_keys_it_cannot_read_closes(
    fake_server_cmd: list[str], tmp_path: Path, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fake_server(fake_server_cmd, tmp_path, "tiny") as (port, _):
        async with serving(GatewayConfig(), StaticDirectory([upstream("one", "tiny", port=port)])) as gw:
            url = gw.address + "/v1/chat/completions"
            async with http.post(url, json={**CHAT, "model": "tiny"}) as resp:
                assert resp.status == 200  # no keys configured: open (on loopback)
            monkeypatch.delenv("LLAMA_ORCH_TEST_UNSET_KEYS", raising=False)
            gw.reconfigure(gw.config.model_copy(update={"api_keys_env": "LLAMA_ORCH_TEST_UNSET_KEYS"}))
            for query in ("", "?lane=aiohttp"):
                async with http.post(url + query, json={**CHAT, "model": "tiny"},
                                     headers={"Authorization": "Bearer anything"}) as resp:
                    assert resp.status == 401
                    message = (await resp.json())["error"]["message"]
                    assert "'LLAMA_ORCH_TEST_UNSET_KEYS', but that variable is unset" in message
                    assert "restart" in message


async def test_refuses_public_bind_without_keys_and_a_taken_port() -> None:
    with pytest.raises(GatewayStartError, match="not a loopback address"):
        await Gateway(GatewayConfig(host="0.0.0.0", port=free_port()), StaticDirectory([]), Keyring()).start()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(GatewayStartError, match="already in use"):
            await Gateway(GatewayConfig(port=port), StaticDirectory([]), Keyring()).start()


# --- streaming faults -------------------------------------------------------------------------------


@LANES
async def test_upstream_dying_mid_stream_ends_the_client_stream_with_an_error_event(
    fake_server_cmd: list[str], tmp_path: Path, http: aiohttp.ClientSession, query: str
) -> None:
    env = {"FAKE_TOKEN_DELAY": "0.05", "FAKE_CRASH_AFTER": "0.5"}
    with fake_server(fake_server_cmd, tmp_path, "tiny", env) as (port, _):
        directory = StaticDirectory([upstream("one", "tiny", port=port)])
        async with serving(GatewayConfig(), directory) as gw:
            body = {**CHAT, "model": "tiny", "stream": True, "max_tokens": 1000}
            async with http.post(gw.address + "/v1/chat/completions" + query, json=body) as resp:
                events = await sse_events(resp)
            assert_lane(gw, query, 1)
            assert events[0].startswith(b"data: ")
            assert events[-1].startswith(b"event: error\ndata: ")
            assert json.loads(events[-1].split(b"data: ", 1)[1])["error"]["code"] == "stream_interrupted"
            async with http.get(gw.address + "/metrics") as r:
                assert 'llama_orch_gateway_errors_total{model="tiny",source="stream_error"} 1' in await r.text()
            # the instance's passive health hears of it (core.traffic_health)
            assert await evidence(directory, 1) == [
                ("one", "instance 'one' closed the stream before it ended (UpstreamClosed)")]


@LANES
async def test_upstream_killed_mid_stream_ends_the_client_stream(
    fake_server_cmd: list[str], tmp_path: Path, http: aiohttp.ClientSession, query: str
) -> None:
    with fake_server(fake_server_cmd, tmp_path, "tiny", {"FAKE_TOKEN_DELAY": "0.05"}) as (port, proc):
        async with serving(GatewayConfig(), StaticDirectory([upstream("one", "tiny", port=port)])) as gw:
            body = {**CHAT, "model": "tiny", "stream": True, "max_tokens": 100000}
            async with http.post(gw.address + "/v1/chat/completions" + query, json=body) as resp:
                await resp.content.readuntil(b"\n\n")
                kill_group(proc)  # type: ignore[arg-type]
                rest = await resp.content.read()
            assert rest.rstrip().split(b"\n\n")[-1].startswith(b"event: error")
            assert_lane(gw, query, 1)


@LANES
async def test_client_disconnect_closes_the_upstream_request(
    fake_server_cmd: list[str], tmp_path: Path, http: aiohttp.ClientSession, query: str
) -> None:
    log_dir = tmp_path
    with fake_server(fake_server_cmd, tmp_path, "tiny", {"FAKE_TOKEN_DELAY": "0.02"}, "-np", "1") as (port, _):
        log = next(log_dir.glob(f"fake-tiny-{port}.log"))
        async with serving(GatewayConfig(), StaticDirectory([upstream("one", "tiny", port=port)])) as gw:
            body = {**CHAT, "model": "tiny", "stream": True, "max_tokens": 100000}
            for _ in range(3):
                resp = await http.post(gw.address + "/v1/chat/completions" + query, json=body)
                for _ in range(3):
                    await resp.content.readuntil(b"\n\n")
                resp.close()  # drop the connection mid-stream
            await async_wait_until(lambda: log.read_text().count("cancel task") == 3, 10,
                                   message="the fake saw 3 cancelled tasks")
            async with http.get(f"http://127.0.0.1:{port}/slots") as r:
                assert not any(s["is_processing"] for s in await r.json())
            assert gw.lanes["fast"] == 0 if query else gw.lanes == {"fast": 3, "handed_off": 0}


def dechunk(raw: bytes) -> bytes:
    """The body of a chunked HTTP/1.1 answer (`raw` = everything after the head)."""
    out, pos = bytearray(), 0
    while True:
        end = raw.index(b"\r\n", pos)
        size = int(raw[pos:end], 16)
        if size == 0:
            return bytes(out)
        out += raw[end + 2:end + 2 + size]
        pos = end + 2 + size + 2


async def read_answer(reader: asyncio.StreamReader) -> bytes:
    await reader.readuntil(b"\r\n\r\n")
    raw = b""
    while not raw.endswith(b"\r\n0\r\n\r\n"):
        raw += await reader.read(65536)
    return dechunk(raw)


async def test_a_client_reading_slowly_pauses_the_upstream_and_still_gets_every_event(
    fake_server_cmd: list[str], tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    with fake_server(fake_server_cmd, tmp_path, "tiny", {"FAKE_TOKEN_DELAY": "0"}) as (port, _):
        async with serving(GatewayConfig(), StaticDirectory([upstream("one", "tiny", port=port)])) as gw:
            body = json.dumps({**CHAT, "model": "tiny", "stream": True, "max_tokens": 20000}).encode()
            async with http.post(f"http://127.0.0.1:{port}/v1/chat/completions", data=body) as direct:
                expected = await sse_events(direct)
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a client that reads slowly
            host, gw_port = gw.address.removeprefix("http://").split(":")
            sock.connect((host, int(gw_port)))
            reader, writer = await asyncio.open_connection(sock=sock)
            writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            # ~3 MB of events against a 4 KB window: the gateway stops reading the upstream
            # instead of buffering the stream in memory
            await async_wait_until(lambda: any(up.sink_state == "drain" for up in gw._live), 10,
                                   message="the relay paused for the slow client")
            got = [e for e in (await read_answer(reader)).split(b"\n\n") if e.strip()]
            writer.close()
            assert len(got) == len(expected) > 20000 and got[-1] == b"data: [DONE]"
            assert all(e.startswith(b"data: {") for e in got[:-1])


@LANES
async def test_wedged_upstream_times_out_with_504(
    fake_server_cmd: list[str], tmp_path: Path, http: aiohttp.ClientSession, query: str
) -> None:
    with fake_server(fake_server_cmd, tmp_path, "tiny", {"FAKE_WEDGE": "1"}) as (port, _):
        directory = StaticDirectory([upstream("one", "tiny", port=port)])
        async with (
            serving(GatewayConfig(request_timeout_s=1.0), directory) as gw,
            http.post(gw.address + "/v1/chat/completions" + query, json={**CHAT, "model": "tiny"}) as resp,
        ):
            assert resp.status == 504 and (await resp.json())["error"]["code"] == "upstream_timeout"
            assert resp.headers["X-Llama-Orch-Source"] == "gateway"
            assert_lane(gw, query, 1)
            assert await evidence(directory, 1) == [("one", "instance 'one' did not answer within the timeout")]


@LANES
async def test_each_request_tells_the_directory_what_it_says_of_the_instances_health(
    fake_server_cmd: list[str], tmp_path: Path, http: aiohttp.ClientSession, query: str
) -> None:
    # Passive health (core.traffic_health): an answer, streamed or whole, is proof of life;
    # llama-server's own 500 is a failure, named in its words; a request for no instance is not counted.
    with fake_server(fake_server_cmd, tmp_path, "tiny", {"FAKE_FAIL_COMPLETIONS": "poison"}) as (port, _):
        directory = StaticDirectory([upstream("one", "tiny", port=port)])
        async with serving(GatewayConfig(), directory) as gw:
            url = gw.address + "/v1/chat/completions" + query
            poison = {"model": "tiny", "messages": [{"role": "user", "content": "poison"}]}
            for body, status in (({**CHAT, "model": "tiny"}, 200), ({**CHAT, "model": "tiny", "stream": True}, 200),
                                 (poison, 500), ({**poison, "stream": True}, 500), ({**CHAT, "model": "nope"}, 404)):
                async with http.post(url, json=body) as resp:
                    assert resp.status == status, await resp.text()
                    await resp.read()
            cuda = "it answered HTTP 500: CUDA error: an illegal memory access was encountered"  # llama-server's words
            assert await evidence(directory, 4) == [("one", ""), ("one", ""), ("one", cuda), ("one", cuda)]
            assert gw.lanes["fast"] == (0 if query else 5)


async def test_an_instances_own_routes_stream_while_bytes_come_and_time_out_in_silence(
    fake_server_cmd: list[str], tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """Its web UI streams chats through /instances/<name>/: the read timeout (request_timeout_s)
    applies, as on the routed paths, not a cap on the whole answer (which cut them at 30 s)."""
    body = {**CHAT, "stream": True, "max_tokens": 8}
    config = GatewayConfig(request_timeout_s=1.0)
    with fake_server(fake_server_cmd, tmp_path, "tiny", {"FAKE_TOKEN_DELAY": "0.3"}) as (port, _):
        async with serving(config, StaticDirectory([upstream("one", "tiny", port=port)])) as gw:
            async with http.post(gw.address + "/instances/one/v1/chat/completions", json=body) as resp:
                events = await sse_events(resp)
            assert events[-1] == b"data: [DONE]" and len(events) == 8 + 3  # 2.4 s in all, past the 1 s
            assert not any(e.startswith(b"event: error") for e in events)
    with fake_server(fake_server_cmd, tmp_path, "tiny", {"FAKE_WEDGE": "1"}) as (port, _):
        async with (
            serving(config, StaticDirectory([upstream("one", "tiny", port=port)])) as gw,
            http.post(gw.address + "/instances/one/completion", json={"prompt": "x"}) as resp,
        ):
            assert resp.status == 504 and (await resp.json())["error"]["code"] == "upstream_timeout"


@LANES
async def test_slow_stream_arrives_whole_and_gateway_stop_ends_it_cleanly(
    fake_server_cmd: list[str], tmp_path: Path, http: aiohttp.ClientSession, query: str
) -> None:
    with fake_server(fake_server_cmd, tmp_path, "tiny", {"FAKE_TOKEN_DELAY": "0.05"}) as (port, _):
        gw = await started(GatewayConfig(), StaticDirectory([upstream("one", "tiny", port=port)]))
        body = {**CHAT, "model": "tiny", "stream": True, "max_tokens": 100000}
        async with http.post(gw.address + "/v1/chat/completions" + query, json=body) as resp:
            await resp.content.readuntil(b"\n\n")
            await gw.stop()
            rest = await resp.content.read()
        assert b"shutting down" in rest.rstrip().split(b"\n\n")[-1]
        assert_lane(gw, query, 1)


# --- lifecycle from traffic -------------------------------------------------------------------------


def on_demand_dir(fake_server_cmd: list[str], model_file: Path, tmp_path: Path, names: list[str],
                  env: dict[str, str] | None = None, **fields: object) -> ProcessDirectory:
    ups, cmds = [], {}
    for name in names:
        port = free_port()
        ups.append(upstream(name, name, port=port, state=S.STOPPED, on_demand=True, **fields))
        cmds[name] = [*fake_server_cmd, "--host", "127.0.0.1", "--port", str(port), "-m", str(model_file),
                      "--alias", name]
    return ProcessDirectory(ups, cmds, tmp_path, {n: env for n in names} if env else None)


@LANES
async def test_reject_mode_answers_503_with_retry_after_while_loading(
    fake_server_cmd: list[str], model_file: Path, tmp_path: Path, http: aiohttp.ClientSession, query: str
) -> None:
    directory = on_demand_dir(fake_server_cmd, model_file, tmp_path, ["slow"], {"FAKE_LOAD_SECONDS": "60"})
    async with serving(GatewayConfig(start_wait="reject"), directory) as gw:
        url = gw.address + "/v1/chat/completions" + query
        results = await asyncio.gather(*(http.post(url, json={**CHAT, "model": "slow"}) for _ in range(5)))
        for resp in results:
            assert resp.status == 503 and resp.headers["Retry-After"] == "5"  # never timed: the default
            assert (await resp.json())["error"]["code"] == "model_loading"
            resp.release()
        assert len(directory.starts) == 1 and len(directory.procs) == 1
        directory.set("slow", ready_in_s=41.2)  # the daemon learned its load time
        async with http.post(url, json={**CHAT, "model": "slow"}) as resp:
            assert resp.status == 503 and resp.headers["Retry-After"] == "42"
            assert "retry in 42 s" in (await resp.json())["error"]["message"]
        assert gw.lanes["fast"] == (0 if query else 6)


@LANES
async def test_hold_mode_waits_for_the_load_and_starts_once(
    fake_server_cmd: list[str], model_file: Path, tmp_path: Path, http: aiohttp.ClientSession, query: str
) -> None:
    directory = on_demand_dir(fake_server_cmd, model_file, tmp_path, ["lazy"], {"FAKE_LOAD_SECONDS": "1"})
    async with serving(GatewayConfig(start_wait="hold", start_wait_timeout_s=30), directory) as gw:
        url = gw.address + "/v1/chat/completions" + query
        results = await asyncio.gather(*(http.post(url, json={**CHAT, "model": "lazy"}) for _ in range(6)))
        assert [r.status for r in results] == [200] * 6
        for r in results:
            r.release()
        assert len(directory.starts) == 1
        assert gw.lanes["fast"] == (0 if query else 6)


@LANES
async def test_hold_timeout_answers_503(
    fake_server_cmd: list[str], model_file: Path, tmp_path: Path, http: aiohttp.ClientSession, query: str
) -> None:
    directory = on_demand_dir(fake_server_cmd, model_file, tmp_path, ["slow"], {"FAKE_LOAD_SECONDS": "60"})
    async with (
        serving(GatewayConfig(start_wait_timeout_s=0.5), directory) as gw,
        http.post(gw.address + "/v1/chat/completions" + query, json={**CHAT, "model": "slow"}) as resp,
    ):
        assert resp.status == 503 and resp.headers["Retry-After"]
        assert "did not become ready" in (await resp.json())["error"]["message"]
        assert_lane(gw, query, 1)


async def test_held_stream_is_kept_alive_with_comments_that_the_openai_sdk_ignores(
    fake_server_cmd: list[str], model_file: Path, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    import openai

    directory = on_demand_dir(fake_server_cmd, model_file, tmp_path, ["lazy"], {"FAKE_LOAD_SECONDS": "1"})
    async with serving(GatewayConfig(start_wait_timeout_s=30, hold_keepalive_s=0.2), directory) as gw:
        client = openai.AsyncOpenAI(base_url=gw.address + "/v1", api_key="none", max_retries=0)
        raw = await http.post(gw.address + "/v1/chat/completions",
                              json={**CHAT, "model": "lazy", "stream": True})
        assert raw.status == 200 and raw.headers["Content-Type"].startswith("text/event-stream")
        events = await sse_events(raw)
        comments = [e for e in events if e.startswith(b": loading model 'lazy'")]
        data = [e for e in events if e.startswith(b"data: ")]
        assert len(comments) >= 2, events[:4]  # a 1 s load at 0.2 s intervals
        assert events.index(data[0]) > events.index(comments[-1])
        assert len(data) == 5 + 3 and data[-1] == b"data: [DONE]"
        # the same through the SDK, on a model that is up by now: content, no error
        stream = await client.chat.completions.create(model="lazy", messages=CHAT["messages"],  # type: ignore[arg-type]
                                                      max_tokens=5, stream=True)
        assert [c async for c in stream if c.choices and c.choices[0].delta.content]
        # a request that is not streamed is held silently, as before
        async with http.post(gw.address + "/v1/chat/completions", json={**CHAT, "model": "lazy"}) as plain:
            assert plain.status == 200 and (await plain.json())["choices"]
        assert directory.entries["lazy"].in_flight == 0
        await client.close()


async def test_held_stream_whose_model_never_comes_ends_with_an_error_event(
    fake_server_cmd: list[str], model_file: Path, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    import openai

    directory = on_demand_dir(fake_server_cmd, model_file, tmp_path, ["slow"], {"FAKE_LOAD_SECONDS": "60"})
    async with serving(GatewayConfig(start_wait_timeout_s=0.7, hold_keepalive_s=0.2), directory) as gw:
        async with http.post(gw.address + "/v1/chat/completions",
                             json={**CHAT, "model": "slow", "stream": True}) as resp:
            assert resp.status == 200  # started before the outcome was known
            events = await sse_events(resp)
        assert events[0].startswith(b": loading model 'slow'")
        assert events[-1].startswith(b"event: error\ndata: ")
        error = json.loads(events[-1].split(b"data: ", 1)[1])["error"]
        assert error["code"] == "model_loading" and "did not become ready" in error["message"]
        client = openai.AsyncOpenAI(base_url=gw.address + "/v1", api_key="none", max_retries=0)
        with pytest.raises(openai.APIError, match="did not become ready"):
            stream = await client.chat.completions.create(model="slow", messages=CHAT["messages"],  # type: ignore[arg-type]
                                                          stream=True)
            async for _ in stream:
                pass
        await client.close()
        assert directory.entries["slow"].in_flight == 0


async def test_client_leaving_a_held_stream_leaves_nothing_counted(
    fake_server_cmd: list[str], model_file: Path, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    directory = on_demand_dir(fake_server_cmd, model_file, tmp_path, ["lazy"], {"FAKE_LOAD_SECONDS": "1"})
    async with serving(GatewayConfig(start_wait_timeout_s=30, hold_keepalive_s=0.1), directory) as gw:
        resp = await http.post(gw.address + "/v1/chat/completions", json={**CHAT, "model": "lazy", "stream": True})
        assert (await resp.content.readuntil(b"\n\n")).startswith(b": loading model")
        resp.close()  # gone while the model loads
        await async_wait_until(lambda: directory.entries["lazy"].routable, 15, message="lazy ready")
        async with http.post(gw.address + "/v1/chat/completions", json={**CHAT, "model": "lazy"}) as again:
            assert again.status == 200
        assert directory.entries["lazy"].in_flight == 0
        assert len(directory.starts) == 1


async def test_idle_ttl_stops_and_max_loaded_evicts_least_recently_used(
    fake_server_cmd: list[str], model_file: Path, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    directory = on_demand_dir(fake_server_cmd, model_file, tmp_path, ["a", "b", "c"])
    directory.set("c", idle_ttl_s=0.3)
    async with serving(GatewayConfig(max_loaded=2), directory, idle_check_interval_s=0.05) as gw:
        url = gw.address + "/v1/chat/completions"
        for name in ("a", "b"):
            async with http.post(url, json={**CHAT, "model": name}) as resp:
                assert resp.status == 200
        async with http.post(url, json={**CHAT, "model": "c"}) as resp:
            assert resp.status == 200
        assert ("a", "evicted to start c (max_loaded=2)") in directory.stops
        assert directory.entries["b"].state is S.READY
        await async_wait_until(lambda: ("c", "idle TTL expired") in directory.stops, 10, message="c idle-stopped")
        assert directory.entries["c"].state is S.STOPPED


async def test_a_full_max_loaded_holds_the_request_until_a_loaded_model_goes_idle(
    fake_server_cmd: list[str], model_file: Path, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """llama-swap's queue: with max_loaded=1 and `a` streaming, a request for `b` waits (it used to
    get 503 at once), then `b` starts in `a`'s place the moment `a`'s stream ends, uncut."""
    directory = on_demand_dir(fake_server_cmd, model_file, tmp_path, ["a", "b"], {"FAKE_TOKEN_DELAY": "0.02"})
    config = GatewayConfig(max_loaded=1, start_wait_timeout_s=30, hold_keepalive_s=0.05)
    async with serving(config, directory) as gw:
        url = gw.address + "/v1/chat/completions"
        a = await http.post(url, json={**CHAT, "model": "a", "stream": True, "max_tokens": 40})
        assert a.status == 200
        first = b""
        while not first.endswith(b"\n\n") or b"data: " not in first:  # past the loading comments: a streams
            first += await a.content.readuntil(b"\n\n")
        b = await http.post(url, json={**CHAT, "model": "b", "stream": True})
        assert (await b.content.readuntil(b"\n\n")).startswith(b": waiting for room to load 'b'")  # not refused
        assert [name for name, _ in directory.starts] == ["a"] and directory.stops == []  # a keeps streaming
        async with http.get(gw.address + "/metrics") as resp:
            assert "\nllama_orch_gateway_waiting_requests 1\n" in await resp.text()  # b, for room
        rest = await a.read()
        assert b'"completion_tokens":40' in first + rest and rest.endswith(b"data: [DONE]\n\n")  # whole
        events = [e for e in (await b.read()).split(b"\n\n") if e.startswith(b"data: ")]
        assert events[-1] == b"data: [DONE]" and len(events) > 2
        assert directory.stops == [("a", "evicted to start b (max_loaded=1)")]
        assert [name for name, _ in directory.starts] == ["a", "b"]
        async with http.get(gw.address + "/metrics") as resp:
            text = await resp.text()
        assert "\nllama_orch_gateway_waiting_requests 0\n" in text
        assert '\nllama_orch_gateway_evictions_total{instance="a"} 1\n' in text


async def test_a_full_max_loaded_answers_503_once_the_hold_runs_out(
    fake_server_cmd: list[str], model_file: Path, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    directory = on_demand_dir(fake_server_cmd, model_file, tmp_path, ["a", "b"], {"FAKE_TOKEN_DELAY": "0.2"})
    async with serving(GatewayConfig(max_loaded=1, start_wait_timeout_s=0.3), directory) as gw:
        url = gw.address + "/v1/chat/completions"
        async with http.post(url, json={**CHAT, "model": "a", "stream": True, "max_tokens": 100}) as a:
            await a.content.readuntil(b"\n\n")
            async with http.post(url, json={**CHAT, "model": "b"}) as b:
                assert b.status == 503 and b.headers["Retry-After"] == "5"
                error = (await b.json())["error"]
            assert error["code"] == "capacity_exhausted"
            assert "max_loaded=1" in error["message"] and "for 0.3 s" in error["message"]
            assert directory.stops == [] and [name for name, _ in directory.starts] == ["a"]
        rejecting = await started(GatewayConfig(max_loaded=1, start_wait="reject"), directory)
        try:  # "reject" refuses at once, without waiting
            url = rejecting.address + "/v1/chat/completions"
            async with http.post(url, json={**CHAT, "model": "a", "stream": True, "max_tokens": 100}) as a:
                await a.content.readuntil(b"\n\n")
                async with http.post(url, json={**CHAT, "model": "b"}) as b:
                    assert b.status == 503 and (await b.json())["error"]["code"] == "capacity_exhausted"
        finally:
            await rejecting.stop()


@LANES
async def test_replicas_share_load_and_the_queue_overflows_into_429(
    fake_server_cmd: list[str], tmp_path: Path, http: aiohttp.ClientSession, query: str
) -> None:
    env = {"FAKE_TOKEN_DELAY": "0.05"}
    with (
        fake_server(fake_server_cmd, tmp_path, "m", env) as (p1, _),
        fake_server(fake_server_cmd, tmp_path, "m", env) as (p2, _),
    ):
        directory = StaticDirectory([upstream("r1", "m", port=p1, slots=1), upstream("r2", "m", port=p2, slots=1)])
        async with serving(GatewayConfig(queue_size=1), directory) as gw:
            url = gw.address + "/v1/chat/completions" + query
            body = {**CHAT, "model": "m", "max_tokens": 10}
            results = await asyncio.gather(*(http.post(url, json=body) for _ in range(6)))
            statuses = sorted(r.status for r in results)
            served_by = {r.headers.get("X-Llama-Orch-Instance") for r in results if r.status == 200}
            for r in results:
                r.release()
            # 2 slots + a queue of 1 per replica: 4 served, 2 refused
            assert statuses == [200, 200, 200, 200, 429, 429]
            assert served_by == {"r1", "r2"}
            directory.set("r2", routable=False, state=S.UNHEALTHY)
            async with http.post(url, json={**CHAT, "model": "m"}) as resp:
                assert resp.headers["X-Llama-Orch-Instance"] == "r1"
            assert gw.lanes["fast"] == (0 if query else 7)


async def test_a_replica_that_refuses_connections_is_skipped_for_the_next_one(
    fake_server_cmd: list[str], tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # "dead" still looks ready (its death is not probed yet) but nothing listens on its port:
    # every request, streamed or not, is answered by the live replica instead of a 503
    with fake_server(fake_server_cmd, tmp_path, "m") as (live, _):
        dead = free_port()
        directory = StaticDirectory([upstream("a-dead", "m", port=dead), upstream("b-live", "m", port=live)])
        async with serving(GatewayConfig(), directory) as gw:
            url = gw.address + "/v1/chat/completions"
            await assert_all_served_by(http, url, "m", "b-live")
            assert directory.entries["a-dead"].in_flight == directory.entries["b-live"].in_flight == 0
            # the only replica refusing: 503 naming it, as before
            async with http.post(url, json={**CHAT, "model": "a-dead"}) as resp:
                assert resp.status == 503 and resp.headers["Retry-After"]
                assert (await resp.json())["error"]["code"] == "upstream_unreachable"


async def test_a_replica_still_loading_is_skipped_and_alone_its_own_503_passes_through(
    fake_server_cmd: list[str], tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # "a-loading" restarted since the last probe: it listens but answers 503 "Loading model".
    # The request did no work there, so it goes to the ready replica instead.
    env = {"FAKE_LOAD_SECONDS": "120"}
    with fake_server(fake_server_cmd, tmp_path, "m") as (live, _), \
            fake_server(fake_server_cmd, tmp_path, "m", env, wait=False) as (loading, _):
        wait_until(lambda: health_ok(loading, 503), 15, message="fake answering 503 while loading")
        directory = StaticDirectory([upstream("a-loading", "m", port=loading), upstream("b-live", "m", port=live)])
        async with serving(GatewayConfig(), directory) as gw:
            url = gw.address + "/v1/chat/completions"
            await assert_all_served_by(http, url, "m", "b-live")
            assert directory.entries["a-loading"].in_flight == directory.entries["b-live"].in_flight == 0
            # asked for by name, nobody else can take it: llama-server's own answer
            async with http.post(url, json={**CHAT, "model": "a-loading"}) as resp:
                assert resp.status == 503
                assert resp.headers["X-Llama-Orch-Source"] == "upstream"
                assert (await resp.json())["error"]["message"] == "Loading model"


async def test_reconfigure_applies_keys_origins_and_limits_live_and_reports_what_needs_a_restart(
    fake_server_cmd: list[str], tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("old-key\n")
    with fake_server(fake_server_cmd, tmp_path, "tiny") as (port, _):
        directory = StaticDirectory([upstream("one", "tiny", port=port)])
        config = GatewayConfig(api_keys_file=str(keys_file))
        async with serving(config, directory, load_keyring(None, str(keys_file))) as gw:
            url = gw.address + "/v1/chat/completions"

            async def status(key: str, origin: str | None = None) -> int:
                headers = {"Authorization": f"Bearer {key}", **({"Origin": origin} if origin else {})}
                async with http.post(url, json={**CHAT, "model": "tiny"}, headers=headers) as resp:
                    return resp.status

            assert await status("old-key") == 200
            keys_file.write_text("new-key tiny\n")  # rotated, and the origin list narrowed
            changed = gw.config.model_copy(update={"cors_origins": ["http://localhost:*"], "max_loaded": 2,
                                                   "port": gw.config.port + 1})
            assert gw.reconfigure(changed) == ["port"]  # the listener stays where it is
            assert (await status("old-key"), await status("new-key")) == (401, 200)
            assert await status("new-key", origin="http://127.0.0.1:3000") == 403
            assert gw.traffic.config.max_loaded == 2 and gw.config.port != changed.port
            keys_file.write_text("")  # unusable: nothing changes
            with pytest.raises(GatewayStartError, match="holds no key"):
                gw.reconfigure(changed)
            assert await status("new-key") == 200
