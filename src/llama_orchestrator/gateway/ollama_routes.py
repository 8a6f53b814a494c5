"""Ollama's API on the gateway (`/api/chat`, `/api/generate`, `/api/embed`, `/api/tags`, ...), for
apps that speak only Ollama's (gateway.ollama translates).

A chat, generate or embed request is translated and sent to the gateway's own OpenAI route (or
`/infill`, for a generate with a suffix) over loopback, so it gets everything an OpenAI request
gets (keys and their scopes, request filters, on-demand starts and holds, the queue, replicas,
metrics); the answer is translated back: one object, or NDJSON lines. A client that leaves
closes the inner request, which frees the slot.
Errors have Ollama's shape, `{"error": "..."}`, and so do the gateway's answers to any other
`/api/...` path (`Gateway._dispatch`): Ollama's model management (`/api/pull`, `/api/create`,
`/api/delete`, ...) is not served, and the error says what to use instead. `GET /` and `HEAD /`
answer "Ollama is running", as Ollama does, for the clients that probe it (public, as there).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from llama_orchestrator import gguf_file
from llama_orchestrator.core import routing
from llama_orchestrator.core.routing import InstanceDirectory, Upstream
from llama_orchestrator.core.states import InstanceState as S
from llama_orchestrator.gateway import ollama
from llama_orchestrator.gateway.auth import Key
from llama_orchestrator.gateway.catalog import model_list, parse_json, served_names
from llama_orchestrator.gateway.errors import SOURCE_HEADER, BadRequest, HTTPFailure, MethodNotAllowed, NotFound
from llama_orchestrator.gateway.loopback import (
    Loopback,
    RelayedFailure,
    origin,
    raise_for_status,
    sse_objects,
    whole_object,
)
from llama_orchestrator.gateway.scrape import instance_get
from llama_orchestrator.gateway.traffic import Traffic
from llama_orchestrator.gateway.upstream import Response, UpstreamClosed
from llama_orchestrator.gguf_file import GgufFacts

VERSION = "0.12.0"  # the Ollama API version it answers as (clients check for a recent one)
NDJSON = "application/x-ndjson"
_RUNNING = frozenset({S.STARTING, S.READY, S.UNHEALTHY, S.RECONCILING, S.BACKOFF})
PREFIX = "/api/"
RUNNING_TEXT = "Ollama is running"  # Ollama's answer to `GET /`, which its clients probe
PROPS_TIMEOUT_S = 10.0
FACTS_KEPT = 256  # model file versions whose facts are kept (forgotten all at once past this)


class OllamaRoutes:
    def __init__(
        self,
        directory: InstanceDirectory,
        traffic: Traffic,
        authorize: Callable[[web.BaseRequest], Key | None],
        loopback: Loopback,
    ) -> None:
        self.directory = directory
        self.traffic = traffic
        self.authorize = authorize
        self.loopback = loopback
        self._known_facts: dict[tuple[str, int, float], GgufFacts] = {}  # by model file version

    def routes(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(GET routes, POST routes)."""
        get = {"/": self.running, "/api/version": self.version, "/api/tags": self.tags, "/api/ps": self.ps}
        post = {"/api/show": self.show, "/api/chat": self.chat, "/api/generate": self.generate,
                "/api/embed": self.embed, "/api/embeddings": self.embed}
        return {p: _ollama_errors(h) for p, h in get.items()}, {p: _ollama_errors(h) for p, h in post.items()}

    async def running(self, _request: web.BaseRequest) -> web.Response:
        return web.Response(text=RUNNING_TEXT, content_type="text/plain", charset="utf-8",
                            headers={SOURCE_HEADER: "gateway"})

    async def version(self, _request: web.BaseRequest) -> web.Response:
        return _json({"version": VERSION})

    async def tags(self, request: web.BaseRequest) -> web.Response:
        ups = self.directory.upstreams()
        models = []
        for m in model_list(ups, self.authorize(request)):
            serving = routing.candidates(ups, str(m["id"]))
            models.append(ollama.model_entry(str(m["id"]), serving, await self._facts(serving)))
        return _json({"models": models})

    async def ps(self, request: web.BaseRequest) -> web.Response:
        ups = self.directory.upstreams()
        loaded = [m for m in model_list(ups, self.authorize(request)) if m["status"] == {"value": "loaded"}]
        now = self.traffic.clock()
        models = []
        for m in loaded:
            serving = routing.candidates(ups, str(m["id"]))
            models.append({**ollama.model_entry(str(m["id"]), serving, await self._facts(serving)), "size_vram": 0,
                           "expires_at": ollama.expires_at(serving, now)})
        return _json({"models": models})

    async def show(self, request: web.BaseRequest) -> web.Response:
        key = self.authorize(request)
        body = await _body(request)
        model = body.get("model") or body.get("name")
        replicas = self._replicas(model, key)
        up = routing.pick_replica(replicas)
        props = await self._props(up) if up is not None else None
        return _json(ollama.show(str(model), props, replicas, await self._facts(replicas)))

    async def chat(self, request: web.BaseRequest) -> web.StreamResponse:
        caller, body = await self._inference_body(request)
        if not body.get("messages"):
            return await self._load_or_unload(caller, body, "message")
        return await self._relay(request, "/v1/chat/completions", ollama.chat_request(body), "message")

    async def generate(self, request: web.BaseRequest) -> web.StreamResponse:
        caller, body = await self._inference_body(request)
        if not body.get("prompt") and not body.get("images"):
            return await self._load_or_unload(caller, body, "response")
        path, translated = ollama.generate_request(body)
        return await self._relay(request, path, translated, "response")

    async def embed(self, request: web.BaseRequest) -> web.StreamResponse:
        legacy = request.path == "/api/embeddings"
        _, body = await self._inference_body(request)
        started = time.perf_counter()
        up = await self._send(request, "/v1/embeddings", ollama.embed_request(body, legacy))
        try:
            result = await whole_object(up)
        finally:
            up.close()
        return _json(ollama.embed_answer(body["model"], result, legacy, started))

    # --- plumbing ------------------------------------------------------------------------------
    async def _send(self, request: web.BaseRequest, path: str, body: dict[str, Any]) -> Response:
        """POST `body` to the gateway's own `path`; its error answer raised for Ollama's shape."""
        up = await self.loopback.send(request, path, body)
        await raise_for_status(up)
        return up

    async def _facts(self, replicas: Sequence[Upstream]) -> GgufFacts:
        """What the model file of the first of `replicas` says (replicas serve one model), read in
        a thread once per file version: a file's metadata can sit megabytes in."""
        up = next((u for u in replicas if u.model_path), None)
        if up is None:
            return ollama.NO_FACTS
        version = (up.model_path, up.model_bytes, up.model_mtime)
        known = self._known_facts.get(version)
        if known is None:
            known = await asyncio.to_thread(gguf_file.facts, up.model_path)
            if len(self._known_facts) >= FACTS_KEPT:
                self._known_facts.clear()
            self._known_facts[version] = known
        return known

    async def _inference_body(self, request: web.BaseRequest) -> tuple[Key | None, dict[str, Any]]:
        """The caller's key (checked before the body is read: a wrong key learns nothing) and the body."""
        key = self.authorize(request)
        body = await _body(request)
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise BadRequest("model is required", code="model_required")
        return key, body

    def _replicas(self, model: object, key: Key | None) -> list[Upstream]:
        ups = self.directory.upstreams()
        replicas = routing.candidates(ups, model) if isinstance(model, str) and model else []
        if not replicas or (key is not None and not key.allows(served_names(ups, str(model)))):
            raise NotFound(f"model '{model}' not found", code="model_not_found")
        return replicas

    async def _load_or_unload(self, caller: Key | None, body: dict[str, Any], key: str) -> web.Response:
        """Ollama's spelling of load (no messages or prompt) and unload (`keep_alive: 0` as well)."""
        model = body["model"]
        replicas = self._replicas(model, caller)
        unload = str(body.get("keep_alive", "")).strip() in ("0", "0s", "0m", "0.0")
        if unload:
            for u in replicas:
                if u.state in _RUNNING and not u.restarting:
                    self.directory.request_stop(u.name, "unloaded by an Ollama client (keep_alive 0)")
        else:
            await self.traffic.until_up(model)
        part = ollama.ChatStream(model, key).part("", "")
        part.update(done=True, done_reason="unload" if unload else "load")
        return _json(part)

    async def _relay(self, request: web.BaseRequest, path: str, body: dict[str, Any], key: str) -> web.StreamResponse:
        started = time.perf_counter()
        up = await self._send(request, path, body)
        try:
            if not body["stream"]:
                answer = ollama.answer(body["model"], key, await whole_object(up), started)
                return _json(answer, headers=origin(up, ok=True))
            stream = ollama.ChatStream(body["model"], key, started)
            response = web.StreamResponse(headers={"Content-Type": NDJSON, SOURCE_HEADER: "gateway",
                                                   **origin(up, ok=True)})
            await response.prepare(request)
            async for chunk in sse_objects(up):
                for obj in _translate(chunk, stream):
                    await response.write(json.dumps(obj).encode() + b"\n")
            for obj in stream.finish():
                await response.write(json.dumps(obj).encode() + b"\n")
            await response.write_eof()
            return response
        except (UpstreamClosed, TimeoutError) as exc:
            raise HTTPFailure(f"the stream ended early ({exc})", status=502) from exc
        finally:
            up.close()  # a client that left: the socket closes, and the gateway frees the slot

    async def _props(self, up: Upstream) -> dict[str, Any] | None:
        """The instance's llama-server /props, or None when it does not answer."""
        body = await instance_get(self.loopback.pool(), up, "/props", PROPS_TIMEOUT_S)
        try:
            props = json.loads(body) if body is not None else None
        except ValueError:
            return None
        return props if isinstance(props, dict) else None


def _translate(chunk: dict[str, Any], stream: ollama.ChatStream) -> list[dict[str, Any]]:
    """One SSE event of the inner answer as Ollama objects."""
    if "error" in chunk:  # the stream was cut, or a held start failed
        error = chunk["error"]
        return [{"error": error.get("message", str(error)) if isinstance(error, dict) else str(error)}]
    return stream.feed(chunk)


async def _body(request: web.BaseRequest) -> dict[str, Any]:
    body = parse_json(await request.read()) if request.can_read_body else {}
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object", code="invalid_json")
    return body


def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers={SOURCE_HEADER: "gateway", **(headers or {})})


def not_served(path: str) -> NotFound:
    """The error for an `/api/...` path the gateway does not serve (Ollama's model management)."""
    return NotFound(
        f"the gateway does not serve {path}: it does not manage models through Ollama's API. Download a model "
        "with `llama-orch pull owner/repo:QUANT` and serve it from an instance config (`llama-orch create NAME "
        "--model FILE`, or `--hf owner/repo:QUANT`); the models served are at /api/tags",
        code="route_not_found",
    )


def error_response(exc: HTTPFailure) -> web.Response:
    """`exc` in Ollama's error shape, `{"error": "..."}`, with its status and headers."""
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s is not None else {}
    if isinstance(exc, RelayedFailure):
        headers.update(exc.origin)
    if isinstance(exc, MethodNotAllowed):
        headers["Allow"] = exc.allow
    return _json({"error": exc.message}, exc.status, headers)


def _ollama_errors(handler: Callable[[web.BaseRequest], Any]) -> Callable[[web.BaseRequest], Any]:
    """Ollama's error shape, `{"error": "..."}`, for every failure of `handler`."""
    async def wrapped(request: web.BaseRequest) -> web.StreamResponse:
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except ollama.BadOllamaRequest as exc:
            return _json({"error": str(exc)}, 400)
        except HTTPFailure as exc:
            return error_response(exc)
    return wrapped

