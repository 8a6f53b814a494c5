"""Ollama's API on the gateway with fake llama-servers: the faults (a client leaving, an upstream
dying mid-stream), load and unload, refusals. The real server's answers: test_gateway_real_server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import gguf
import numpy as np
import ollama
import pytest
from tests.integration.test_gateway_faults import fake_server, http, serving  # noqa: F401 (fixture)
from tests.support.waiting import async_wait_until
from tests.unit.gateway.gateway_fakes import StaticDirectory, upstream

from llama_orchestrator.config.orchestrator import GatewayConfig
from llama_orchestrator.core.states import InstanceState as S
from llama_orchestrator.gateway.auth import Keyring, parse_keys_file

pytestmark = pytest.mark.integration
MESSAGES = [{"role": "user", "content": "hi"}]


async def test_a_client_leaving_mid_stream_frees_the_slot(
    fake_server_cmd: list[str], tmp_path: Path, http: aiohttp.ClientSession  # noqa: F811
) -> None:
    with fake_server(fake_server_cmd, tmp_path, "tiny", {"FAKE_TOKEN_DELAY": "0.02"}, "-np", "1") as (port, _):
        log = next(tmp_path.glob(f"fake-tiny-{port}.log"))
        directory = StaticDirectory([upstream("one", "tiny", port=port)])
        async with serving(GatewayConfig(), directory) as gw:
            body = {"model": "tiny", "messages": MESSAGES, "options": {"num_predict": 100000}}
            resp = await http.post(gw.address + "/api/chat", json=body)
            assert resp.headers["Content-Type"] == "application/x-ndjson"
            for _ in range(3):
                line = json.loads(await resp.content.readline())
                assert line["done"] is False and line["model"] == "tiny"
            resp.close()  # drop the connection mid-stream
            await async_wait_until(lambda: "cancel task" in log.read_text(), 10, message="the fake saw the cancel")
            await async_wait_until(lambda: directory.entries["one"].in_flight == 0, 10, message="nothing in flight")
            async with http.get(f"http://127.0.0.1:{port}/slots") as r:
                assert not any(s["is_processing"] for s in await r.json())


async def test_an_upstream_dying_mid_stream_ends_with_an_error_the_ollama_client_raises(
    fake_server_cmd: list[str], tmp_path: Path
) -> None:
    env = {"FAKE_TOKEN_DELAY": "0.05", "FAKE_CRASH_AFTER": "0.5"}
    with fake_server(fake_server_cmd, tmp_path, "tiny", env) as (port, _):
        async with serving(GatewayConfig(), StaticDirectory([upstream("one", "tiny", port=port)])) as gw:
            client = ollama.AsyncClient(host=gw.address)
            parts = []
            with pytest.raises(ollama.ResponseError) as cut:
                async for part in await client.chat("tiny", messages=MESSAGES, stream=True,
                                                    options={"num_predict": 1000}):
                    parts.append(part)
            assert parts and not any(p.done for p in parts)  # tokens came, then the error, never `done`
            assert cut.value.error == "instance 'one' closed the stream before it ended (UpstreamClosed)"


async def test_load_and_unload_as_ollama_clients_ask_for_them() -> None:
    directory = StaticDirectory([upstream("lazy", "lazy", on_demand=True, state=S.STOPPED)])
    async with serving(GatewayConfig(), directory) as gw:
        client = ollama.AsyncClient(host=gw.address)
        loading = asyncio.ensure_future(client.generate("lazy"))  # no prompt: load it
        await async_wait_until(lambda: directory.starts, 10, message="a start was asked for")
        assert not loading.done()  # it answers once the model is up
        directory.set("lazy", state=S.READY, routable=True)
        loaded = await loading
        assert loaded.done and loaded.done_reason == "load"
        unloaded = await client.chat("lazy", messages=[], keep_alive=0)
        assert unloaded.done_reason == "unload"
        assert directory.stops == [("lazy", "unloaded by an Ollama client (keep_alive 0)")]


async def test_what_ollamas_api_refuses_is_refused_in_its_shape(http: aiohttp.ClientSession) -> None:  # noqa: F811
    async with serving(GatewayConfig(), StaticDirectory([upstream("one", "tiny", port=9)])) as gw:
        for path, body, status, message in (
            ("/api/generate", {"model": "tiny", "prompt": "def f(", "suffix": 1}, 400, "suffix must be a string"),
            ("/api/chat", {"messages": MESSAGES}, 400, "model is required"),
            ("/api/show", {"model": "nope"}, 404, "model 'nope' not found"),
            ("/api/embed", {"model": "tiny", "input": 5}, 400, "input must be a string"),
        ):
            async with http.post(gw.address + path, json=body) as resp:
                assert resp.status == status, path
                assert message in (await resp.json())["error"], path
        async with http.get(gw.address + "/api/version") as resp:
            assert (await resp.json())["version"].count(".") == 2


async def test_a_held_stream_whose_start_fails_ends_with_the_reason() -> None:
    """With `hold_keepalive_s`, a streamed request held for a start gets its answer begun (with
    keep-alive comments, which are no Ollama lines); a start that fails ends it with the reason."""
    directory = StaticDirectory([upstream("lazy", "lazy", on_demand=True, state=S.STOPPED)])
    async with serving(GatewayConfig(hold_keepalive_s=0.05, start_wait_timeout_s=30), directory) as gw:
        client = ollama.AsyncClient(host=gw.address)
        parts: list[object] = []

        async def chat() -> None:
            async for part in await client.chat("lazy", messages=MESSAGES, stream=True):
                parts.append(part)

        streaming = asyncio.ensure_future(chat())
        await async_wait_until(lambda: directory.starts, 10, message="a start was asked for")
        directory.set("lazy", state=S.FAILED)
        with pytest.raises(ollama.ResponseError) as failed:
            await streaming
        assert parts == [] and "lazy" in failed.value.error


def _model_file(path: Path, architecture: str, pooling: gguf.PoolingType | None) -> Path:
    writer = gguf.GGUFWriter(str(path), architecture)
    if pooling is not None:
        writer.add_pooling_type(pooling)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_tensor("x", np.zeros(4, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


async def test_api_show_says_an_embedding_model_is_capable_of_embedding(tmp_path: Path) -> None:
    """Ollama's clients offer a model for embeddings or for chat by its capabilities; the gateway
    tells an embedding model by its file, as Ollama does (so even while it is not loaded)."""
    nomic = _model_file(tmp_path / "nomic.gguf", "nomic-bert", gguf.PoolingType.MEAN)
    qwen = _model_file(tmp_path / "qwen.gguf", "qwen2", None)
    directory = StaticDirectory([
        upstream("nomic", "nomic-embed", model_path=str(nomic), on_demand=True, state=S.STOPPED),
        upstream("qwen", "qwen", model_path=str(qwen), on_demand=True, state=S.STOPPED),
    ])
    async with serving(GatewayConfig(), directory) as gw:
        client = ollama.AsyncClient(host=gw.address)
        assert (await client.show("nomic-embed")).capabilities == ["embedding"]
        assert (await client.show("qwen")).capabilities == ["completion"]


async def test_ollamas_probe_of_the_root_is_answered_without_a_key(http: aiohttp.ClientSession) -> None:  # noqa: F811
    keys = Keyring(tuple(parse_keys_file("good\n")))
    async with serving(GatewayConfig(), StaticDirectory([upstream("one", "tiny", port=9)]), keys) as gw:
        async with http.get(gw.address + "/") as resp:
            assert resp.status == 200 and await resp.text() == "Ollama is running"
            assert resp.content_type == "text/plain"
        async with http.head(gw.address + "/") as resp:
            assert resp.status == 200
        async with http.get(gw.address + "/api/tags") as resp:  # the rest of the API needs the key
            assert resp.status == 401 and "Invalid API key" in (await resp.json())["error"]


async def test_ollamas_model_management_is_refused_in_its_shape_saying_what_to_use() -> None:
    async with serving(GatewayConfig(), StaticDirectory([upstream("one", "tiny", port=9)])) as gw:
        client = ollama.AsyncClient(host=gw.address)
        for call in (client.pull("tiny"), client.delete("tiny"), client.copy("tiny", "tiny2"),
                     client.create("tiny2", from_="tiny")):
            with pytest.raises(ollama.ResponseError) as refused:
                await call
            assert refused.value.status_code == 404
            assert "does not manage models through Ollama's API" in refused.value.error
            assert "llama-orch pull" in refused.value.error
        async with aiohttp.ClientSession() as http, http.get(gw.address + "/api/chat") as resp:
            assert resp.status == 405 and resp.headers["Allow"] == "POST"
            assert (await resp.json())["error"] == "GET is not allowed on /api/chat; use POST"
