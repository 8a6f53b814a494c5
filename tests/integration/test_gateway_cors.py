"""Browsers at the gateway: CORS preflights, allowed and refused origins (fake llama-server).

A page's `fetch` sends `Origin`, and an OPTIONS preflight (without the key) before any request
with a key or a JSON body; without the right answers the browser shows only "CORS error".
"""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from tests.integration.test_gateway_faults import CHAT, fake_server, serving
from tests.integration.test_gateway_front_door import connect, post, read_response
from tests.unit.gateway.gateway_fakes import StaticDirectory, upstream

from llama_orchestrator.config.orchestrator import GatewayConfig
from llama_orchestrator.core.states import InstanceState as S
from llama_orchestrator.gateway.auth import Keyring, parse_keys_file

pytestmark = pytest.mark.integration

PAGE = "http://localhost:5173"
PREFLIGHT = {"Origin": PAGE, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization,content-type,x-stainless-os"}


async def test_a_page_on_this_machine_passes_the_preflight_without_a_key_and_reads_the_stream(
    fake_server_cmd: list[str], tmp_path: Path
) -> None:
    keys = Keyring(tuple(parse_keys_file("good\n")))
    with fake_server(fake_server_cmd, tmp_path, "tiny") as (port, _):
        async with serving(GatewayConfig(), StaticDirectory([upstream("one", "tiny", port=port)]), keys) as gw, \
                aiohttp.ClientSession() as http:
            async with http.options(f"{gw.address}/v1/chat/completions", headers=PREFLIGHT) as pre:
                assert pre.status == 204
                assert pre.headers["Access-Control-Allow-Origin"] == PAGE
                assert pre.headers["Access-Control-Allow-Headers"] == "authorization,content-type,x-stainless-os"
                assert "POST" in pre.headers["Access-Control-Allow-Methods"]
                assert pre.headers.getall("Access-Control-Allow-Origin") == [PAGE]  # once, not twice

            body = {**CHAT, "model": "tiny", "stream": True}
            async with http.post(f"{gw.address}/v1/chat/completions", json=body) as not_a_browser:
                assert not_a_browser.status == 401 and "Access-Control-Allow-Origin" not in not_a_browser.headers
            auth = {"Origin": PAGE, "Authorization": "Bearer good"}
            async with http.post(f"{gw.address}/v1/chat/completions", json=body, headers=auth) as resp:
                events = [e for e in (await resp.read()).split(b"\n\n") if e.strip()]
                assert resp.status == 200 and resp.headers["Access-Control-Allow-Origin"] == PAGE
                assert "X-Llama-Orch-Instance" in resp.headers["Access-Control-Expose-Headers"]
                assert events[-1] == b"data: [DONE]" and len(events) > 2
            async with http.post(f"{gw.address}/v1/chat/completions", json=body, headers={"Origin": PAGE}) as no_key:
                # the page can read why: the error carries the CORS header too
                assert no_key.status == 401 and no_key.headers["Access-Control-Allow-Origin"] == PAGE
                assert (await no_key.json())["error"]["code"] == "invalid_api_key"
            assert gw.lanes["fast"] == 0  # a browser's requests are aiohttp's, never the fast lane's


async def test_a_page_from_another_origin_is_refused_before_anything_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = StaticDirectory([upstream("od", "od", state=S.STOPPED, on_demand=True)])
    config = GatewayConfig(start_wait="reject")
    async with serving(config, directory) as gw, aiohttp.ClientSession() as http:
        evil = {"Origin": "https://evil.example"}
        async with http.options(f"{gw.address}/v1/chat/completions",
                                headers={**evil, "Access-Control-Request-Method": "POST"}) as pre:
            assert pre.status == 403 and "Access-Control-Allow-Origin" not in pre.headers
        async with http.post(f"{gw.address}/v1/chat/completions", json={**CHAT, "model": "od"},
                             headers=evil) as refused:
            error = (await refused.json())["error"]
            assert refused.status == 403 and error["code"] == "origin_not_allowed"
            assert "https://evil.example" in error["message"] and "gateway.cors_origins" in error["message"]
        assert directory.starts == []  # the page could not make the machine load a model
        refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert refusals == ["gateway: refused requests from origin https://evil.example "
                            "(not in gateway.cors_origins)"]  # named once, for two requests

        async with http.post(f"{gw.address}/v1/chat/completions", json={**CHAT, "model": "od"},
                             headers={"Origin": "app://obsidian.md"}) as allowed:
            assert allowed.status == 503 and allowed.headers["Access-Control-Allow-Origin"] == "app://obsidian.md"
        assert [name for name, _ in directory.starts] == ["od"]


async def test_cors_origins_configures_who_may_and_an_empty_list_refuses_every_browser() -> None:
    directory = StaticDirectory([upstream("one", "tiny")])
    only = GatewayConfig(cors_origins=["https://chat.example.com"])
    async with serving(only, directory) as gw, aiohttp.ClientSession() as http:
        for origin, status in [("https://chat.example.com", 200), (PAGE, 403)]:
            async with http.get(f"{gw.address}/v1/models", headers={"Origin": origin}) as resp:
                assert resp.status == status, origin
        private = {**PREFLIGHT, "Origin": "https://chat.example.com", "Access-Control-Request-Private-Network": "true"}
        async with http.options(f"{gw.address}/v1/models", headers=private) as pre:
            assert pre.status == 204 and pre.headers["Access-Control-Allow-Private-Network"] == "true"
    async with serving(GatewayConfig(cors_origins=[]), directory) as gw, aiohttp.ClientSession() as http:
        async with http.get(f"{gw.address}/v1/models", headers={"Origin": PAGE}) as resp:
            assert resp.status == 403
        async with http.get(f"{gw.address}/v1/models") as resp:  # no Origin: not a browser, served
            assert resp.status == 200 and [m["id"] for m in (await resp.json())["data"]] == ["one", "tiny"]
    everyone = GatewayConfig(cors_origins=["*"])
    anywhere = {"Origin": "https://anywhere.example"}
    async with serving(everyone, directory) as gw, aiohttp.ClientSession() as http, \
            http.get(f"{gw.address}/v1/models", headers=anywhere) as resp:
        assert resp.status == 200 and resp.headers["Access-Control-Allow-Origin"] == "https://anywhere.example"


async def test_options_without_origin_says_what_the_gateway_allows() -> None:
    async with serving(GatewayConfig(), StaticDirectory([])) as gw, aiohttp.ClientSession() as http, \
            http.options(f"{gw.address}/v1/chat/completions") as resp:
        assert resp.status == 204 and set(resp.headers["Allow"].split(", ")) >= {"GET", "POST", "OPTIONS"}
        assert "Access-Control-Allow-Origin" not in resp.headers
        assert await resp.read() == b""


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/chat/completions?lane=aiohttp"],
                         ids=["fast-lane", "aiohttp"])
async def test_a_keyless_gateway_answers_only_hosts_that_name_this_machine(
    fake_server_cmd: list[str], tmp_path: Path, path: str
) -> None:
    """DNS rebinding: a site points its own name at 127.0.0.1, and its page's requests are
    same-origin (no Origin header to refuse); only the Host header still names the site."""
    with fake_server(fake_server_cmd, tmp_path, "tiny") as (port, _):
        directory = StaticDirectory([upstream("one", "tiny", port=port)])
        async with serving(GatewayConfig(), directory) as gw:
            for host, status in [("rebind.evil.example", 403), ("host.docker.internal", 200), ("127.0.0.1", 200),
                                 ("localhost", 200)]:
                reader, writer = await connect(gw)
                writer.write(post({**CHAT, "model": "tiny"}, path=path, host=f"{host}:80"))
                got, _, body = await read_response(reader)
                writer.close()
                assert got == status, (host, body)
                if status == 403:
                    assert json.loads(body)["error"]["code"] == "host_not_allowed" and b"api_keys" in body
        keys = Keyring(tuple(parse_keys_file("good\n")))
        async with serving(GatewayConfig(), directory, keys) as gw:  # a key is what a rebinding page lacks
            reader, writer = await connect(gw)
            writer.write(post({**CHAT, "model": "tiny"}, "Authorization: Bearer good", path=path,
                              host="rebind.evil.example:80"))
            got, _, _ = await read_response(reader)
            writer.close()
            assert got == 200


async def test_a_page_may_stop_a_conversations_stream_with_delete() -> None:
    """`DELETE /v1/stream?conv_id=` (llama.cpp's web UI's stop): the preflight must allow DELETE."""
    async with serving(GatewayConfig(), StaticDirectory([])) as gw, aiohttp.ClientSession() as http:
        asks = {"Origin": PAGE, "Access-Control-Request-Method": "DELETE"}
        async with http.options(f"{gw.address}/v1/stream", headers=asks) as pre:
            assert pre.status == 204 and pre.headers["Access-Control-Allow-Origin"] == PAGE
            assert "DELETE" in pre.headers["Access-Control-Allow-Methods"].split(", ")
        async with http.options(f"{gw.address}/v1/stream") as plain:
            assert "DELETE" in plain.headers["Allow"].split(", ")
        async with http.delete(f"{gw.address}/v1/stream", params={"conv_id": "c"}, headers={"Origin": PAGE}) as resp:
            assert resp.status == 204 and resp.headers["Access-Control-Allow-Origin"] == PAGE
