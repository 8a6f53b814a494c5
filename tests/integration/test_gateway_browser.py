"""A web page in a real Chromium calls the gateway: CORS as a browser enforces it (fake llama-server).

The page sends what the OpenAI JS SDK sends from a browser (a key, a JSON body, an
`x-stainless-os` header), so each request is preceded by a preflight without the key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from tests.integration.test_gateway_faults import fake_server, serving
from tests.support.browser import chromium
from tests.unit.gateway.gateway_fakes import StaticDirectory, upstream

from llama_orchestrator.config.orchestrator import GatewayConfig
from llama_orchestrator.gateway.auth import Keyring, parse_keys_file

pytestmark = pytest.mark.integration

PAGE = """<!doctype html><title>chat</title><script>
async function run(gateway) {
  const headers = {"Authorization": "Bearer good", "Content-Type": "application/json", "x-stainless-os": "Linux"};
  const chat = (model, stream) => fetch(gateway + "/v1/chat/completions", {method: "POST", headers,
      body: JSON.stringify({model, stream, max_tokens: 5, messages: [{role: "user", content: "hi"}]})});
  const out = {};
  try {
    const models = await fetch(gateway + "/v1/models", {headers});
    out.models = (await models.json()).data.map(m => m.id);
    const resp = await chat("tiny", true);
    let text = "";
    const reader = resp.body.getReader(), decoder = new TextDecoder();
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += decoder.decode(r.value);
    out.stream = {status: resp.status, instance: resp.headers.get("X-Llama-Orch-Instance"),
                  events: text.split("\\n\\n").filter(e => e.trim())};
    const missing = await chat("nope", false);
    out.missing = {status: missing.status, code: (await missing.json()).error.code};
  } catch (e) { out.error = String(e); }
  return out;
}
</script>"""


@pytest.fixture
async def page_server() -> AsyncIterator[int]:
    """The page, served on 127.0.0.1: its origin is http://localhost:PORT or http://127.0.0.1:PORT."""
    async def page(_request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def test_a_page_streams_a_chat_through_the_gateway_and_a_foreign_page_is_refused(
    fake_server_cmd: list[str], tmp_path: Path, page_server: int
) -> None:
    keys = Keyring(tuple(parse_keys_file("good\n")))
    config = GatewayConfig(cors_origins=["http://localhost:*"])  # so http://127.0.0.1:PORT is foreign
    with fake_server(fake_server_cmd, tmp_path, "tiny") as (port, _):
        async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json={"model": "tiny", "stream": True, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        ) as direct:
            expected = [e for e in (await direct.text()).split("\n\n") if e.strip()]
        directory = StaticDirectory([upstream("one", "tiny", port=port)])
        async with serving(config, directory, keys) as gw, chromium(tmp_path) as page:
            await page.goto(f"http://localhost:{page_server}/")
            got = await page.evaluate(f"run({gw.address!r})")
            assert "error" not in got, got
            assert set(got["models"]) == {"one", "tiny"}
            assert got["stream"]["status"] == 200 and got["stream"]["instance"] == "one"
            assert len(got["stream"]["events"]) == len(expected) and got["stream"]["events"][-1] == "data: [DONE]"
            assert got["missing"] == {"status": 404, "code": "model_not_found"}  # the page reads the error

            await page.goto(f"http://127.0.0.1:{page_server}/")
            refused = await page.evaluate(f"run({gw.address!r})")
            assert refused == {"error": "TypeError: Failed to fetch"}  # all a page learns of a CORS refusal


async def test_an_instances_web_ui_loads_through_the_gateway_and_reaches_its_server(
    fake_server_cmd: list[str], tmp_path: Path
) -> None:
    """llama-server's web UI at /instances/<name>/ (as llama-swap's /upstream/<model>/): the page
    comes gzipped with its headers, and its relative requests reach the same instance."""
    with fake_server(fake_server_cmd, tmp_path, "tiny") as (port, _):
        directory = StaticDirectory([upstream("one", "tiny", port=port)])
        async with serving(GatewayConfig(), directory) as gw, chromium(tmp_path) as page:
            await page.goto(f"{gw.address}/instances/one")  # redirected to the slash, as relative links need
            assert await page.evaluate("location.pathname") == "/instances/one/"
            assert await page.evaluate("document.title") == "llama.cpp - chat"
            assert await page.evaluate("crossOriginIsolated") is True  # COEP and COOP came through
            assert await page.evaluate("ask()") == "tiny"  # ./props is this instance's own
