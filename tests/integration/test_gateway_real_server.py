"""The official OpenAI (and Anthropic) SDKs through the gateway to the real llama-server with the
tiny model."""

from __future__ import annotations

import io
import json
import urllib.request
import wave
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import ollama
import openai
import pytest
from tests.support.js_clients import run_js_clients
from tests.support.ports import free_port
from tests.support.procs import running
from tests.support.waiting import async_wait_until, wait_until
from tests.unit.gateway.gateway_fakes import StaticDirectory, upstream

from llama_orchestrator.config.models import RequestFilters
from llama_orchestrator.config.orchestrator import GatewayConfig
from llama_orchestrator.gateway.auth import Keyring, parse_keys_file
from llama_orchestrator.gateway.request_filters import rewriter
from llama_orchestrator.gateway.server import Gateway

pytestmark = [pytest.mark.integration, pytest.mark.real_server]

KEY = "test-key-123"
SCOPED_KEY = "scoped-key-456"  # may use the model `chat` only
CLAUDE = "claude-haiku-4-5"  # a further alias of `chat` (model.aliases)


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def healthy(port: int) -> bool:
    try:
        return get_json(f"http://127.0.0.1:{port}/health") == {"status": "ok"}
    except OSError:
        return False


@contextmanager
def real_server(binary: Path, model: Path, tmp_path: Path, alias: str, *extra: str) -> Iterator[int]:
    port = free_port()
    cmd = [binary, "--host", "127.0.0.1", "--port", str(port), "-m", model, "--alias", alias,
           "-c", "8192", "-np", "2", "-t", "1", *extra]
    with running(cmd, None, tmp_path / f"{alias}.log"):
        wait_until(lambda: healthy(port), 60, message=f"llama-server {alias} ready")
        yield port


@pytest.fixture
async def gateway(llama_server_bin: Path, tiny_model: Path, tmp_path: Path) -> AsyncIterator[tuple[Gateway, int]]:
    with (
        real_server(llama_server_bin, tiny_model, tmp_path, "tiny") as chat_port,
        real_server(llama_server_bin, tiny_model, tmp_path, "tiny-embed", "--embeddings") as embed_port,
    ):
        directory = StaticDirectory([
            upstream("chat", "tiny", port=chat_port, slots=2, aliases=(CLAUDE,)),
            upstream("embed", "tiny-embed", port=embed_port),
        ])
        keys = Keyring(tuple(parse_keys_file(f"{KEY}\n{SCOPED_KEY} chat")))
        gw = Gateway(GatewayConfig(port=free_port()), directory, keys)
        await gw.start()
        try:
            yield gw, chat_port
        finally:
            await gw.stop()


def client(gw: Gateway, key: str = KEY) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.address + "/v1", api_key=key, max_retries=0)


async def test_openai_sdk_models_chat_stream_completions_embeddings(gateway: tuple[Gateway, int]) -> None:
    gw, _ = gateway
    async with client(gw) as c:
        models = await c.models.list()
        ids = {m.id: m for m in models.data}
        assert {"chat", "embed", "tiny", "tiny-embed"} <= set(ids)
        assert ids["tiny"].owned_by == "llama-orchestrator"
        tiny = await c.models.retrieve("tiny")  # GET /v1/models/tiny
        assert (tiny.id, tiny.owned_by) == ("tiny", "llama-orchestrator")

        chat = await c.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "hello"}], max_tokens=8)
        assert chat.choices[0].message.content is not None and chat.usage is not None

        pieces, finish = [], None
        stream = await c.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "hello"}], max_tokens=12, stream=True,
            extra_body={"ignore_eos": True})  # the random tiny model could end at once, with no text
        async for chunk in stream:
            if chunk.choices:
                pieces.append(chunk.choices[0].delta.content or "")
                finish = chunk.choices[0].finish_reason or finish
        assert finish in ("length", "stop") and "".join(pieces)

        comp = await c.completions.create(model="chat", prompt="the", max_tokens=4)
        assert comp.choices[0].text is not None

        emb = await c.embeddings.create(model="tiny-embed", input=["a cat", "a mat"])
        assert len(emb.data) == 2 and len(emb.data[0].embedding) == 32


async def test_openai_sdk_errors_unknown_model_and_wrong_key(gateway: tuple[Gateway, int]) -> None:
    gw, _ = gateway
    async with client(gw) as c:
        with pytest.raises(openai.NotFoundError) as not_found:
            await c.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
        assert "Available models" in str(not_found.value) and "tiny" in str(not_found.value)
        with pytest.raises(openai.NotFoundError) as no_model:
            await c.models.retrieve("nope")
        assert "'nope' does not exist" in str(no_model.value) and "tiny" in str(no_model.value)
    async with client(gw, "wrong") as c:
        with pytest.raises(openai.AuthenticationError):
            await c.models.list()
        with pytest.raises(openai.AuthenticationError):
            await c.models.retrieve("tiny")
    async with client(gw, SCOPED_KEY) as c:
        assert (await c.models.retrieve("chat")).id == "chat"
        assert (await c.models.retrieve("tiny")).id == "tiny"  # chat's alias: the same instance
        with pytest.raises(openai.NotFoundError) as hidden:  # out of the key's scope: as if absent
            await c.models.retrieve("tiny-embed")
        assert str(hidden.value).endswith(f"Available models: chat, {CLAUDE}, tiny")


async def test_openai_responses_api_and_anthropic_messages_api(gateway: tuple[Gateway, int]) -> None:
    """The two other chat APIs llama-server speaks, routed by `model` like the rest, streams included."""
    gw, _ = gateway
    async with client(gw) as c:
        resp = await c.responses.create(model="tiny", input="hello", max_output_tokens=8)
        assert resp.object == "response" and resp.model == "tiny" and resp.output
        kinds = []
        async with await c.responses.create(model="tiny", input="hello", max_output_tokens=8, stream=True) as events:
            kinds = [e.type async for e in events]
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
        assert "response.output_text.delta" in kinds

    claude = anthropic.AsyncAnthropic(base_url=gw.address, api_key=KEY, max_retries=0)  # sent as X-Api-Key
    async with claude:
        msg = await claude.messages.create(model="tiny", max_tokens=8,
                                           messages=[{"role": "user", "content": "hello"}])
        assert msg.type == "message" and msg.content and msg.stop_reason in ("max_tokens", "end_turn")
        # by a further alias (model.aliases): the model name Claude-style clients send by default
        stream = await claude.messages.create(model=CLAUDE, max_tokens=8, stream=True,
                                              messages=[{"role": "user", "content": "hello"}])
        kinds = [e.type async for e in stream]  # the raw events (the `messages.stream` helper hides some)
        # not kinds[0] == "message_start": llama-server itself leaves that event out of about one
        # stream in four (17 of 60 straight to it with curl), so it is not asserted here
        assert kinds[-1] == "message_stop" and {"content_block_start", "content_block_delta"} <= set(kinds)
        count = await claude.messages.count_tokens(model="tiny", messages=[{"role": "user", "content": "hello"}])
        assert count.input_tokens > 0
        with pytest.raises(anthropic.NotFoundError) as missing:
            await claude.messages.create(model="nope", max_tokens=8, messages=[{"role": "user", "content": "x"}])
        assert "Available models" in str(missing.value)
    bad = anthropic.AsyncAnthropic(base_url=gw.address, api_key="wrong", max_retries=0)
    async with bad:
        with pytest.raises(anthropic.AuthenticationError):
            await bad.messages.create(model="tiny", max_tokens=8, messages=[{"role": "user", "content": "x"}])


async def test_a_transcription_is_routed_by_its_forms_model_field(gateway: tuple[Gateway, int]) -> None:
    """OpenAI's `audio.transcriptions` sends a multipart form: its `model` field routes it, and the
    form goes upstream as it came (the tiny model hears nothing: llama-server's own 501 says so)."""
    gw, _ = gateway
    audio = io.BytesIO()
    with wave.open(audio, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 1600)
    async with client(gw) as c:
        with pytest.raises(openai.APIStatusError) as unsupported:
            await c.audio.transcriptions.create(model=CLAUDE, file=("a.wav", audio.getvalue(), "audio/wav"))
        answer = unsupported.value.response
        assert (answer.status_code, answer.headers["X-Llama-Orch-Source"], answer.headers["X-Llama-Orch-Instance"]) \
            == (501, "upstream", "chat")
        assert "does not support audio input" in unsupported.value.message
        with pytest.raises(openai.NotFoundError) as unknown:
            await c.audio.transcriptions.create(model="nope", file=("a.wav", audio.getvalue(), "audio/wav"))
        assert "Available models" in unknown.value.message


async def test_client_disconnect_frees_the_real_slot(gateway: tuple[Gateway, int]) -> None:
    gw, chat_port = gateway
    slots_url = f"http://127.0.0.1:{chat_port}/slots"
    async with client(gw) as c:
        for _ in range(2):
            stream = await c.chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": "go"}], max_tokens=6000, stream=True,
                extra_body={"ignore_eos": True})
            seen = 0
            async for _chunk in stream:
                seen += 1
                if seen == 3:
                    break
            assert any(s["is_processing"] for s in get_json(slots_url))  # type: ignore[attr-defined, union-attr]
            await stream.close()
            await async_wait_until(
                lambda: not any(s["is_processing"] for s in get_json(slots_url)),  # type: ignore[attr-defined, union-attr]
                10, message="llama-server slot idle after the client went away")


async def test_a_named_conversations_stream_outlives_its_client_and_resumes_through_the_gateway(
    gateway: tuple[Gateway, int],
) -> None:
    """llama.cpp's web UI names its conversation (X-Conversation-Id) so that after a page reload it
    can resume a running answer from llama-server's buffer: the header reaches the server on the
    routed and the instance's own routes, and the lookup, resume and stop routes answer through
    /instances/<name>/ and, for what the gateway routed, at its root."""
    gw, _ = gateway
    base = f"{gw.address}/instances/chat"
    chat = {"messages": [{"role": "user", "content": "go"}], "max_tokens": 40, "stream": True, "ignore_eos": True}
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as http:
        for url, conversation in ((f"{base}/v1/chat/completions", "conv-native"),
                                  (f"{gw.address}/v1/chat/completions", "conv-routed")):
            body = chat if "instances" in url else {**chat, "model": "tiny"}
            async with http.post(url, json=body, headers={"X-Conversation-Id": conversation}) as resp:
                assert resp.status == 200
                assert (await resp.content.readline()).startswith(b"data: ")  # then the client leaves

        async with http.post(f"{base}/v1/streams/lookup",
                             json={"conversation_ids": ["conv-native", "conv-routed", "unknown"]}) as resp:
            assert sorted(entry["conversation_id"] for entry in await resp.json()) == ["conv-native", "conv-routed"]
        for conversation in ("conv-native", "conv-routed"):
            async with http.get(f"{base}/v1/stream", params={"conv_id": conversation, "from": "0"}) as resp:
                events = [e for e in (await resp.text()).split("\n\n") if e.startswith("data: ")]
            assert events[-1] == "data: [DONE]"  # the whole answer, generated while no client listened
            assert '"finish_reason":"length"' in events[-2] and '"predicted_n":40' in events[-2]

        # at the root, as llama.cpp's router serves them: the gateway knows the instance of each
        # conversation it routed (the one begun at /instances/chat/ is that route's to resume)
        asked = {"conversation_ids": ["conv-native", "conv-routed", "unknown"]}
        async with http.post(f"{gw.address}/v1/streams/lookup", json=asked) as resp:
            assert [entry["conversation_id"] for entry in await resp.json()] == ["conv-routed"]
        async with http.get(f"{gw.address}/v1/stream", params={"conv_id": "conv-routed", "from": "0"}) as resp:
            assert resp.headers["X-Llama-Orch-Instance"] == "chat"
            assert (await resp.text()).rstrip().endswith("data: [DONE]")
        for params, status in (({"conv_id": "unknown"}, 404), ({}, 400)):
            async with http.get(f"{gw.address}/v1/stream", params=params) as resp:
                assert resp.status == status and resp.headers["X-Llama-Orch-Source"] == "gateway"
        async with http.delete(f"{gw.address}/v1/stream", params={"conv_id": "conv-routed"}) as resp:
            assert resp.status == 204 and resp.headers["X-Llama-Orch-Source"] == "upstream"
        async with http.post(f"{gw.address}/v1/streams/lookup", json=asked) as resp:
            assert await resp.json() == []  # stopped, and forgotten


async def test_the_pool_learns_that_llama_server_closes_after_a_stream(gateway: tuple[Gateway, int]) -> None:
    """llama-server answers a stream with `Keep-Alive` and then closes the socket: the pool
    notices once and stops keeping those sockets, so no request is written into a dying one."""
    gw, chat_port = gateway
    key = ("127.0.0.1", chat_port)
    async with client(gw) as c:

        async def one_stream() -> str:
            stream = await c.chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True)
            return "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])

        await one_stream()
        await async_wait_until(lambda: key in gw.pool.closes_after_stream, 10,
                               message="the pool saw llama-server close a socket kept after a stream")
        for _ in range(3):
            await one_stream()
            assert not gw.pool._idle.get(key)  # closed by the gateway after the stream, not pooled
        chat = await c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}],
                                               max_tokens=2)
        assert chat.choices and len(gw.pool._idle.get(key, [])) == 1  # a plain answer's socket is kept



async def test_llama_cpp_native_routes_are_routed_by_model_like_the_openai_ones(gateway: tuple[Gateway, int]) -> None:
    """What llama.cpp's own clients call (`/completion`, `/tokenize`, ...), through the gateway by
    `model`, answers exactly as the instance does directly."""
    gw, chat_port = gateway
    direct = f"http://127.0.0.1:{chat_port}"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as http:

        async def post(url: str, body: dict[str, object]) -> Any:
            async with http.post(url, json=body) as resp:
                assert resp.status == 200, await resp.text()
                return await resp.json()

        text = {"content": "hello world"}
        tokens = await post(f"{direct}/tokenize", text)
        assert await post(f"{gw.address}/tokenize", {**text, "model": "tiny"}) == tokens
        ids = tokens["tokens"]
        assert await post(f"{gw.address}/detokenize", {"tokens": ids, "model": CLAUDE}) == await post(
            f"{direct}/detokenize", {"tokens": ids})
        messages = {"messages": [{"role": "user", "content": "hi"}]}
        assert await post(f"{gw.address}/apply-template", {**messages, "model": "chat"}) == await post(
            f"{direct}/apply-template", messages)
        for route, request in (("chat/completions", {**messages, "model": "tiny"}),
                               ("responses", {"input": "hi", "model": "tiny"})):  # token counting
            counted = await post(f"{gw.address}/v1/{route}/input_tokens", request)
            assert counted == await post(f"{direct}/v1/{route}/input_tokens", request) and counted["input_tokens"] > 0
        control = {"model": "chat", "id": "chatcmpl-none", "action": "reasoning_end"}
        assert await post(f"{gw.address}/v1/chat/completions/control", control) == {
            "success": False, "message": "no active completion for this id"}  # llama-server's own answer
        done = await post(f"{gw.address}/completion", {"model": "tiny", "prompt": "the", "n_predict": 4,
                                                       "ignore_eos": True})
        assert done["tokens_predicted"] == 4 and isinstance(done["content"], str)
        embedding = await post(f"{gw.address}/embedding", {"model": "tiny-embed", "content": "a cat"})
        assert len(embedding[0]["embedding"][0]) == 32


async def test_request_filters_impose_sampling_on_the_real_server(gateway: tuple[Gateway, int]) -> None:
    """A model's recommended sampling holds whatever the client sends, and a variant's name gets its
    own on the same loaded model: llama-server's own report of the settings it generated with shows
    the set temperature and its default top_k."""
    _, chat_port = gateway
    filters = RequestFilters(strip_params=["top_k"], set_params={"temperature": 0.25})
    cold = {"strict-cold": RequestFilters(set_params={"temperature": 0.125, "top_k": 7})}  # a variant
    directory = StaticDirectory([
        upstream("strict", "strict", port=chat_port, aliases=tuple(cold), rewrite_body=rewriter(filters, cold)),
        upstream("loose", "loose", port=chat_port),
    ])
    gw = Gateway(GatewayConfig(port=free_port()), directory, Keyring())
    await gw.start()
    try:
        async with aiohttp.ClientSession() as http:
            async def settings(model: str, query: str = "") -> Any:
                body = {"model": model, "prompt": "the", "n_predict": 2, "temperature": 1.5, "top_k": 3}
                async with http.post(f"{gw.address}/completion{query}", json=body) as resp:
                    assert resp.status == 200, await resp.text()
                    return (await resp.json())["generation_settings"]

            for query in ("", "?lane=aiohttp"):  # the fast lane, and aiohttp's path (a query)
                loose, strict, colder = await settings("loose", query), await settings("strict", query), \
                    await settings("strict-cold", query)
                assert (loose["temperature"], loose["top_k"]) == (1.5, 3)  # as the client sent them
                assert (strict["temperature"], strict["top_k"]) == (0.25, 40)  # set, and llama-server's default
                assert (colder["temperature"], colder["top_k"]) == (0.125, 7)  # the variant's, after the instance's
    finally:
        await gw.stop()


async def test_ollama_client_lists_shows_chats_generates_and_embeds(gateway: tuple[Gateway, int]) -> None:
    """Ollama's own Python client, pointed at the gateway, against the real llama-server."""
    gw, _ = gateway
    client = ollama.AsyncClient(host=gw.address, headers={"Authorization": f"Bearer {KEY}"})
    names = [m.model for m in (await client.list()).models]
    assert names == ["chat", "embed", CLAUDE, "tiny", "tiny-embed"]
    shown = await client.show("tiny")
    assert shown.capabilities is not None and "completion" in shown.capabilities
    assert shown.modelinfo is not None and shown.modelinfo["llama.cpp.context_length"] == 4096

    greedy = {"temperature": 0, "seed": 1, "num_predict": 6}
    messages = [{"role": "user", "content": "hello"}]
    whole = await client.chat("tiny", messages=messages, options=greedy)
    assert whole.done and whole.done_reason == "length" and whole.eval_count == 6
    assert whole.prompt_eval_count and whole.message.role == "assistant"
    parts = [p async for p in await client.chat("tiny", messages=messages, options=greedy, stream=True)]
    assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
    assert "".join(p.message.content or "" for p in parts) == whole.message.content  # the same greedy answer
    assert parts[-1].eval_count == 6 and parts[-1].done_reason == "length"

    generated = await client.generate(CLAUDE, "the", options=greedy)
    assert generated.done and generated.eval_count == 6 and isinstance(generated.response, str)
    raw = [p async for p in await client.generate("chat", "the", raw=True, options=greedy, stream=True)]
    assert raw[-1].done and raw[-1].eval_count == 6

    vectors = await client.embed("tiny-embed", ["a cat", "a dog"])
    assert len(vectors.embeddings) == 2 and len(vectors.embeddings[0]) == 32
    assert (await client.embeddings("tiny-embed", "a cat")).embedding == pytest.approx(vectors.embeddings[0], abs=1e-6)
    assert {m.model for m in (await client.ps()).models} >= {"tiny", "tiny-embed"}

    with pytest.raises(ollama.ResponseError) as unknown:
        await client.chat("nope", messages=messages)
    assert unknown.value.status_code == 404 and "'nope'" in unknown.value.error
    with pytest.raises(ollama.ResponseError) as refused:
        await ollama.AsyncClient(host=gw.address).chat("tiny", messages=messages)
    assert refused.value.status_code == 401


async def test_openai_and_ollama_javascript_sdks_through_the_gateway(
    gateway: tuple[Gateway, int], tmp_path: Path
) -> None:
    """The SDKs web apps and editor plugins use (Node's fetch, not Python's HTTP stacks): models,
    chats whole and streamed, completions, embeddings, the errors, and an aborted stream."""
    gw, chat_port = gateway
    slots_url = f"http://127.0.0.1:{chat_port}/slots"
    out = await run_js_clients(tmp_path, gw.address, KEY, slots_url)
    assert {"chat", "embed", "tiny", "tiny-embed", CLAUDE} <= set(out["models"])
    assert out["chat"] == ["length", 5]
    assert out["stream"][0] >= 1 and out["stream"][1] == 5  # include_usage: the usage chunk came through
    assert out["completion"] == "length"
    assert out["embeddings"] == [32, 32]
    status, kind, code, message = out["unknown"]
    assert (status, kind, code) == (404, "NotFoundError", "model_not_found") and "Available models" in message
    assert out["wrong_key"][:2] == [401, "AuthenticationError"]
    seen, busy = out["aborted"]  # chunks read (the SDK hands over what it had buffered, then ends) ...
    assert seen >= 3 and busy is True  # ... and the slot was busy when the client aborted
    await async_wait_until(  # ... and frees once the gateway closes the upstream request
        lambda: not any(s["is_processing"] for s in get_json(slots_url)),  # type: ignore[attr-defined, union-attr]
        10, message="llama-server slot idle after the JavaScript client aborted")

    assert out["ollama_list"] == ["chat", "embed", CLAUDE, "tiny", "tiny-embed"]
    assert out["ollama_show"][0] == "gguf" and "completion" in out["ollama_show"][1]
    assert out["ollama_chat"] == ["length", 6, True, True, 6]  # streamed: the same greedy text, then done
    assert out["ollama_generate"] == [True, 6]
    assert out["ollama_embed"] == [32]
    assert out["ollama_unknown"][0] == 404 and "'nope'" in out["ollama_unknown"][3]
    # abort() after 3 of 6000 tokens: the client still hands over what it had buffered (up to a few
    # hundred parts of this fast model seen), then throws AbortError or, now and then, just ends
    aborted_at, ended = out["ollama_aborted"]
    assert 3 <= aborted_at < 6000 and ended in ("AbortError", "ended"), out["ollama_aborted"]
    await async_wait_until(
        lambda: not any(s["is_processing"] for s in get_json(slots_url)),  # type: ignore[attr-defined, union-attr]
        10, message="llama-server slot idle after the Ollama client aborted")


async def test_code_completion_with_a_suffix_goes_to_infill_for_ollama_and_openai_clients(
    llama_server_bin: Path, tiny_model: Path, tiny_fim_model: Path, tmp_path: Path
) -> None:
    """Editor plugins complete code with a `suffix`, in Ollama's API or OpenAI's completions:
    through llama.cpp's /infill, whole or streamed (llama-server's own /v1/completions would
    ignore the suffix); a model without fill-in-the-middle tokens gets llama-server's reason."""
    with (
        real_server(llama_server_bin, tiny_fim_model, tmp_path, "coder") as coder_port,
        real_server(llama_server_bin, tiny_model, tmp_path, "tiny") as plain_port,
    ):
        directory = StaticDirectory([upstream("coder", "coder", port=coder_port),
                                     upstream("plain", "tiny", port=plain_port)])
        gw = Gateway(GatewayConfig(port=free_port()), directory, Keyring())
        await gw.start()
        try:
            client = ollama.AsyncClient(host=gw.address)
            greedy = {"temperature": 0, "seed": 1, "num_predict": 5}
            whole = await client.generate("coder", "def add(a, b):\n    ", suffix="\n", options=greedy)
            assert whole.done and whole.done_reason == "length" and whole.eval_count == 5
            assert whole.prompt_eval_count is not None and whole.prompt_eval_count > 5  # prefix and suffix
            parts = [p async for p in await client.generate("coder", "def add(a, b):\n    ", suffix="\n",
                                                            options=greedy, stream=True)]
            assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
            assert "".join(p.response for p in parts) == whole.response  # the same greedy completion
            assert parts[-1].eval_count == 5 and parts[-1].done_reason == "length"
            with pytest.raises(ollama.ResponseError) as unsupported:
                await client.generate("tiny", "def f(", suffix=")")
            assert unsupported.value.status_code == 501
            assert "Infill is not supported by this model" in unsupported.value.error
            async with aiohttp.ClientSession() as http:  # who answered, as on the OpenAI routes
                body = {"model": "tiny", "prompt": "def f(", "suffix": ")", "stream": False}
                async with http.post(gw.address + "/api/generate", json=body) as refused:
                    assert refused.status == 501
                    assert (refused.headers["X-Llama-Orch-Source"], refused.headers["X-Llama-Orch-Instance"]) == (
                        "upstream", "plain")
                async with http.post(gw.address + "/api/generate", json={**body, "model": "coder"}) as done:
                    assert done.status == 200
                    assert (done.headers["X-Llama-Orch-Source"], done.headers["X-Llama-Orch-Instance"]) == (
                        "gateway", "coder")  # the gateway's translation of coder's answer

            prefix, suffix = "def add(a, b):\n    ", "\n"
            direct = json.loads(urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{coder_port}/infill", json.dumps(
                    {"input_prefix": prefix, "input_suffix": suffix, "max_tokens": 5, "temperature": 0, "seed": 1}
                ).encode()), timeout=30).read())
            sdk = openai.AsyncOpenAI(base_url=gw.address + "/v1", api_key="none", max_retries=0)
            answer = await sdk.completions.create(model="coder", prompt=prefix, suffix=suffix, max_tokens=5,
                                                  temperature=0, seed=1)
            assert answer.choices[0].text == direct["content"]  # /infill's completion, not the prompt's alone
            assert answer.choices[0].finish_reason == "length" and answer.usage is not None
            assert (answer.usage.completion_tokens, answer.usage.prompt_tokens) == (5, direct["tokens_evaluated"])
            chunks = [c async for c in await sdk.completions.create(
                model="coder", prompt=prefix, suffix=suffix, max_tokens=5, temperature=0, seed=1, stream=True)]
            assert "".join(c.choices[0].text for c in chunks) == direct["content"]
            assert chunks[-1].choices[0].finish_reason == "length"
            with pytest.raises(openai.APIStatusError) as refused_by_server:
                await sdk.completions.create(model="tiny", prompt=prefix, suffix=suffix, max_tokens=5)
            assert refused_by_server.value.status_code == 501
            assert refused_by_server.value.response.headers["X-Llama-Orch-Source"] == "upstream"
            plain = await sdk.completions.create(model="coder", prompt='say "suffix"', max_tokens=2)
            assert plain.usage is not None and plain.usage.completion_tokens == 2  # no suffix: a plain completion
        finally:
            await gw.stop()
