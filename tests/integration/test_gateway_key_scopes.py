"""Keys scoped to a model's variant (a fake llama-server behind an instance with `variants`): such a
key reaches only that variant, everywhere a key's scope is checked; a key scoped to the instance
reaches it and all of its variants (gateway.catalog)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.integration.test_gateway_faults import CHAT, LANES, fake_server, serving
from tests.unit.gateway.gateway_fakes import StaticDirectory, upstream

from llama_orchestrator.config.models import RequestFilters
from llama_orchestrator.config.orchestrator import GatewayConfig
from llama_orchestrator.gateway.auth import Keyring, parse_keys_file
from llama_orchestrator.gateway.request_filters import rewriter
from llama_orchestrator.gateway.server import Gateway

pytestmark = pytest.mark.integration

KEYS = Keyring(tuple(parse_keys_file("var gemma-long\nwhole gemma\nother tiny\n")))
VARIANT, WHOLE, OTHER = ({"X-Api-Key": k} for k in ("var", "whole", "other"))


@pytest.fixture
def gemma_port(fake_server_cmd: list[str], tmp_path: Path) -> Iterator[int]:
    with fake_server(fake_server_cmd, tmp_path, "gemma") as (port, _):
        yield port


@asynccontextmanager
async def gemma_gateway(port: int) -> AsyncIterator[tuple[Gateway, aiohttp.ClientSession]]:
    """`gemma` with the variant `gemma-long` (as the daemon's directory builds it), and `tiny`."""
    variants = {"gemma-long": RequestFilters(set_params={"max_tokens": 40})}
    directory = StaticDirectory([
        upstream("gemma", "gemma", port=port, aliases=("gemma-long",), variants=("gemma-long",),
                 rewrite_body=rewriter(RequestFilters(), variants)),
        upstream("tiny", "tiny", port=port),
    ])
    async with serving(GatewayConfig(), directory, KEYS) as gw, aiohttp.ClientSession() as http:
        yield gw, http


async def status_and_body(resp: aiohttp.ClientResponse) -> tuple[int, Any]:
    return resp.status, await resp.json(content_type=None)


@LANES
async def test_a_key_for_a_variant_uses_only_the_variant_and_one_for_the_instance_all_of_it(
    gemma_port: int, query: str
) -> None:
    async with gemma_gateway(gemma_port) as (gw, http):
        url = gw.address + "/v1/chat/completions" + query
        for key, model, status in [(VARIANT, "gemma-long", 200), (VARIANT, "gemma", 404), (VARIANT, "tiny", 404),
                                   (WHOLE, "gemma", 200), (WHOLE, "gemma-long", 200), (OTHER, "gemma-long", 404)]:
            async with http.post(url, json={**CHAT, "model": model}, headers=key) as resp:
                got, body = await status_and_body(resp)
                assert got == status, (key, model, body)
                if status == 404:
                    assert body["error"]["code"] == "model_not_found"
        async with http.post(url, json={**CHAT, "model": "gemma"}, headers=VARIANT) as resp:
            error = (await resp.json())["error"]["message"]
            assert "Available models: gemma-long" in error and "'gemma'" in error  # only what the key may use


async def test_model_lists_show_a_variant_key_only_its_variant(gemma_port: int) -> None:
    async with gemma_gateway(gemma_port) as (gw, http):
        for path in ("/v1/models", "/models"):
            for key, ids in [(VARIANT, ["gemma-long"]), (WHOLE, ["gemma", "gemma-long"]), (OTHER, ["tiny"])]:
                async with http.get(gw.address + path, headers=key) as resp:
                    assert [m["id"] for m in (await resp.json())["data"]] == ids, (path, key)
        for path in ("/api/tags", "/api/ps"):
            for key, names in [(VARIANT, ["gemma-long"]), (WHOLE, ["gemma", "gemma-long"])]:
                async with http.get(gw.address + path, headers=key) as resp:
                    assert [m["name"] for m in (await resp.json())["models"]] == names, (path, key)
        async with http.get(gw.address + "/v1/models/gemma", headers=VARIANT) as resp:
            assert resp.status == 404
        async with http.get(gw.address + "/v1/models/gemma-long", headers=VARIANT) as resp:
            assert resp.status == 200


async def test_an_instances_own_routes_need_a_key_for_the_instance_not_a_variant(gemma_port: int) -> None:
    """They skip the variant's filters: a key for the variant would get the model without them."""
    async with gemma_gateway(gemma_port) as (gw, http):
        for key, status in [(VARIANT, 404), (WHOLE, 200), (OTHER, 404)]:
            async with http.get(gw.address + "/instances/gemma/props", headers=key) as resp:
                got, body = await status_and_body(resp)
                assert got == status, (key, body)
                if status == 404:
                    assert body["error"]["code"] == "instance_not_found"
        async with http.post(gw.address + "/instances/gemma/v1/chat/completions", json={**CHAT, "model": "gemma"},
                             headers=VARIANT) as resp:
            assert resp.status == 404


async def test_router_mode_and_ollama_routes_keep_a_variant_key_to_its_variant(gemma_port: int) -> None:
    async with gemma_gateway(gemma_port) as (gw, http):
        for key, model, status in [(VARIANT, "gemma", 404), (VARIANT, "gemma-long", 200), (WHOLE, "gemma-long", 200)]:
            for path in ("/models/load", "/models/unload"):
                async with http.post(gw.address + path, json={"model": model}, headers=key) as resp:
                    assert resp.status == status, (path, key, model)
            async with http.get(gw.address + "/props", params={"model": model}, headers=key) as resp:
                assert resp.status == status, ("/props", key, model)
            async with http.post(gw.address + "/api/show", json={"model": model}, headers=key) as resp:
                assert resp.status == status, ("/api/show", key, model)
            chat = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": False}
            async with http.post(gw.address + "/api/chat", json=chat, headers=key) as resp:
                assert resp.status == status, ("/api/chat", key, model)


@LANES
async def test_a_variant_key_reads_on_only_the_streams_it_started_through_its_variant(
    gemma_port: int, query: str
) -> None:
    async with gemma_gateway(gemma_port) as (gw, http):
        url = gw.address + "/v1/chat/completions" + query
        for conversation, model, key in [("by-variant", "gemma-long", VARIANT), ("by-instance", "gemma", WHOLE)]:
            async with http.post(url, json={**CHAT, "model": model}, headers={**key, "X-Conversation-Id": conversation}
                                 ) as resp:
                assert resp.status == 200
        for conversation, key, reaches in [("by-variant", VARIANT, True), ("by-instance", VARIANT, False),
                                           ("by-variant", WHOLE, True), ("by-instance", WHOLE, True)]:
            async with http.get(gw.address + "/v1/stream", params={"conv_id": conversation}, headers=key) as resp:
                # reached: relayed to the fake (which has no such route); else the gateway's own 404
                source = "upstream" if reaches else "gateway"
                assert resp.headers["X-Llama-Orch-Source"] == source, (conversation, key)
