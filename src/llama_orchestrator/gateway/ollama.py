"""Ollama's API in OpenAI terms, both ways: pure translation, no I/O (the routes are gateway.ollama_routes).

Many apps speak only Ollama's API (`/api/chat`, `/api/generate`, `/api/embed`, `/api/tags`):
editor plugins, note apps, home automation. Ollama's own request becomes an OpenAI request for
the gateway's routes, and their answer (a JSON body, or SSE chunks one by one) becomes Ollama's
(one JSON object, or NDJSON lines ending with a `done: true` line that carries the counts). A
generate with a `suffix` goes to llama.cpp's `/infill`, whose own answers `fim.openai_shape` reads.

    openai_body = chat_request(ollama_body)              # -> POST /v1/chat/completions
    stream = ChatStream(model, key="message")            # or key="response" for /api/generate
    for chunk in sse_chunks: lines += stream.feed(chunk) # Ollama objects, then stream.finish()
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from llama_orchestrator.core.routing import Upstream
from llama_orchestrator.core.states import InstanceState as S
from llama_orchestrator.gateway.fim import openai_shape
from llama_orchestrator.gguf_file import GgufFacts

# Ollama's sampling options that llama-server reads under the same name (load-time options such
# as num_ctx or num_gpu belong to the instance's config, and are left out)
SAMPLING = ("temperature", "top_k", "top_p", "min_p", "typical_p", "seed", "stop", "repeat_penalty",
            "repeat_last_n", "presence_penalty", "frequency_penalty", "mirostat", "mirostat_tau", "mirostat_eta")
NO_FACTS = GgufFacts()
DONE_REASONS = {"stop": "stop", "length": "length", "tool_calls": "stop", "content_filter": "stop"}


class BadOllamaRequest(ValueError):
    """A request Ollama's API would refuse (400), with the reason."""


def iso(moment: datetime) -> str:
    """A UTC time as Ollama writes it (`...Z`)."""
    return moment.isoformat().replace("+00:00", "Z")


def now_iso() -> str:
    return iso(datetime.now(UTC))


def chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """An `/api/chat` body as the body of `/v1/chat/completions`."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise BadOllamaRequest("messages must be a list")
    return _common(body, {"messages": _messages(messages)})


def generate_request(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """An `/api/generate` body as (path, body): the chat route (the model's template applies, as in
    Ollama), the plain completion route for a `raw` prompt, or llama.cpp's `/infill` for a prompt
    with a `suffix` (code completion between the two; the model needs fill-in-the-middle tokens)."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise BadOllamaRequest("prompt must be a string")
    suffix = body.get("suffix")
    if suffix:
        if not isinstance(suffix, str):
            raise BadOllamaRequest("suffix must be a string")
        return "/infill", _common(body, {"input_prefix": prompt, "input_suffix": suffix})
    if body.get("raw"):
        return "/v1/completions", _common(body, {"prompt": prompt})
    messages: list[dict[str, Any]] = [{"role": "system", "content": body["system"]}] if body.get("system") else []
    messages.append({"role": "user", "content": prompt, "images": body.get("images")})
    return "/v1/chat/completions", _common(body, {"messages": _messages(messages)})


def embed_request(body: dict[str, Any], legacy: bool) -> dict[str, Any]:
    """An `/api/embed` body (`input`: a string or a list), or `/api/embeddings` (`prompt`)."""
    value = body.get("prompt" if legacy else "input")
    if not isinstance(value, str | list):
        raise BadOllamaRequest("prompt must be a string" if legacy else "input must be a string or a list of strings")
    out: dict[str, Any] = {"model": body["model"], "input": value}
    if isinstance(body.get("dimensions"), int):
        out["dimensions"] = body["dimensions"]
    return out


def _common(body: dict[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    out = {"model": body["model"], **out, "stream": body.get("stream", True) is not False}
    if out["stream"]:
        out["stream_options"] = {"include_usage": True}  # the counts of the last line
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise BadOllamaRequest("options must be an object")
    out.update((name, options[name]) for name in SAMPLING if name in options)
    if isinstance(options.get("num_predict"), int) and options["num_predict"] >= 0:
        out["max_tokens"] = options["num_predict"]
    fmt = body.get("format")
    if fmt == "json":
        out["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict):
        out["response_format"] = {"type": "json_schema", "json_schema": {"name": "format", "schema": fmt}}
    if body.get("tools"):
        out["tools"] = body["tools"]  # the same shape in both APIs
    if isinstance(body.get("think"), bool):
        out["chat_template_kwargs"] = {"enable_thinking": body["think"]}
    return out


def _messages(messages: list[Any]) -> list[dict[str, Any]]:
    """Ollama's messages in OpenAI's shape: images as data URLs, tool calls with ids (and their
    arguments as a JSON string), a tool's answer tied to the call it answers."""
    out: list[dict[str, Any]] = []
    call_ids: list[str] = []
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise BadOllamaRequest("each message needs a role")
        msg: dict[str, Any] = {"role": m["role"], "content": m.get("content") or ""}
        if m.get("images"):
            images = [{"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{i}"}} for i in m["images"]]
            msg["content"] = [{"type": "text", "text": msg["content"]}, *images]
        if m.get("tool_calls"):
            calls: list[dict[str, Any]] = []
            for call in m["tool_calls"]:
                function = call.get("function", {})
                call_ids.append(f"call_{len(out)}_{len(calls)}")
                calls.append({"id": call_ids[-1], "type": "function", "function": {
                    "name": function.get("name", ""), "arguments": json.dumps(function.get("arguments", {}))}})
            msg["tool_calls"] = calls
        if m["role"] == "tool":
            msg["tool_call_id"] = call_ids.pop(0) if call_ids else "call"
            if m.get("tool_name"):
                msg["name"] = m["tool_name"]
        out.append(msg)
    return out


class ChatStream:
    """OpenAI chunks in, Ollama stream objects out. `key` is "message" (`/api/chat`) or
    "response" (`/api/generate`); tool calls, streamed in pieces, leave whole in one object."""

    def __init__(self, model: str, key: str, started: float = 0.0) -> None:
        self.model = model
        self.key = key
        self.started = started or time.perf_counter()  # perf_counter of the request's arrival
        self.done_reason = "stop"
        self.usage: dict[str, Any] = {}
        self.timings: dict[str, Any] = {}
        self._calls: dict[int, dict[str, str]] = {}

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        chunk = openai_shape(chunk)
        self.usage = chunk.get("usage") or self.usage
        self.timings = chunk.get("timings") or self.timings
        out = []
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text, thinking = delta.get("content") or "", delta.get("reasoning_content") or ""
            for call in delta.get("tool_calls") or ():
                mine = self._calls.setdefault(call.get("index", 0), {"name": "", "arguments": ""})
                function = call.get("function") or {}
                mine["name"] += function.get("name") or ""
                mine["arguments"] += function.get("arguments") or ""
            if text or thinking:
                out.append(self.part(text, thinking))
            if choice.get("finish_reason"):
                self.done_reason = DONE_REASONS.get(choice["finish_reason"], "stop")
        return out

    def finish(self) -> list[dict[str, Any]]:
        """The last objects: the tool calls (if any), then `done: true` with the counts."""
        out = []
        if self._calls:
            part = self.part("", "")
            part["message"]["tool_calls"] = [_tool_call(c) for _, c in sorted(self._calls.items())]
            out.append(part)
        last = self.part("", "")
        last.update(done=True, done_reason=self.done_reason, **counts(self.usage, self.timings, self.started))
        return [*out, last]

    def part(self, text: str, thinking: str) -> dict[str, Any]:
        if self.key == "message":
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if thinking:
                message["thinking"] = thinking
            return {"model": self.model, "created_at": now_iso(), "message": message, "done": False}
        part = {"model": self.model, "created_at": now_iso(), "response": text, "done": False}
        if thinking:
            part["thinking"] = thinking
        return part


def answer(model: str, key: str, completion: dict[str, Any], started: float) -> dict[str, Any]:
    """A whole OpenAI answer (chat or text completion) as Ollama's one object."""
    completion = openai_shape(completion)
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    text = message.get("content") if "message" in choice else choice.get("text")
    out = ChatStream(model, key).part(text or "", message.get("reasoning_content") or "")
    if message.get("tool_calls") and key == "message":
        out["message"]["tool_calls"] = [_tool_call(c.get("function") or {}) for c in message["tool_calls"]]
    out.update(done=True, done_reason=DONE_REASONS.get(choice.get("finish_reason") or "stop", "stop"),
               **counts(completion.get("usage") or {}, completion.get("timings") or {}, started))
    return out


def _tool_call(function: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's call (arguments as a JSON string) as Ollama's (arguments as an object)."""
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except ValueError:
        arguments = {}
    return {"function": {"name": function.get("name", ""), "arguments": arguments}}


def counts(usage: dict[str, Any], timings: dict[str, Any], started: float) -> dict[str, int]:
    """The statistics of Ollama's last object (durations in nanoseconds), from llama-server's
    `usage` and `timings`."""
    return {
        "total_duration": int((time.perf_counter() - started) * 1e9), "load_duration": 0,
        "prompt_eval_count": int(usage.get("prompt_tokens") or timings.get("prompt_n") or 0),
        "prompt_eval_duration": int(float(timings.get("prompt_ms") or 0) * 1e6),
        "eval_count": int(usage.get("completion_tokens") or timings.get("predicted_n") or 0),
        "eval_duration": int(float(timings.get("predicted_ms") or 0) * 1e6),
    }


def embed_answer(model: str, result: dict[str, Any], legacy: bool, started: float) -> dict[str, Any]:
    vectors = [d.get("embedding") for d in sorted(result.get("data") or [], key=lambda d: d.get("index", 0))]
    if legacy:
        return {"embedding": vectors[0] if vectors else []}
    return {"model": model, "embeddings": vectors, "total_duration": int((time.perf_counter() - started) * 1e9),
            "load_duration": 0, "prompt_eval_count": int((result.get("usage") or {}).get("prompt_tokens") or 0)}


def model_entry(name: str, replicas: Sequence[Upstream] = (), facts: GgufFacts = NO_FACTS) -> dict[str, Any]:
    """One model of `/api/tags` or `/api/ps`: Ollama's fields, with what the gateway knows (the
    model file's size and time, the largest and latest of the instances serving `name`, and what
    its GGUF metadata says)."""
    size = max((u.model_bytes for u in replicas), default=0)
    mtime = max((u.model_mtime for u in replicas), default=0.0)
    modified = iso(datetime.fromtimestamp(mtime, UTC)) if mtime else now_iso()
    family = facts.architecture
    return {"name": name, "model": name, "modified_at": modified, "size": size, "digest": "",
            "details": {"parent_model": "", "format": "gguf", "family": family,
                        "families": [family] if family else None, "parameter_size": facts.size_label,
                        "quantization_level": facts.quantization}}


NEVER = "9999-12-31T23:59:59Z"  # a model no idle TTL unloads (Ollama's keep_alive -1)


def expires_at(replicas: Sequence[Upstream], now: float) -> str:
    """When `/api/ps` says a model unloads: the soonest idle TTL of its loaded replicas to run out
    if no request comes (`now`: the clock of `Upstream.last_used`); NEVER without a TTL."""
    left = [u.idle_ttl_s - max(0.0, now - u.last_used) for u in replicas
            if u.idle_ttl_s is not None and u.state in (S.READY, S.UNHEALTHY)]
    if not left:
        return NEVER
    when = datetime.now(UTC) + timedelta(seconds=max(0.0, min(left)))
    return iso(when)


def show(name: str, props: dict[str, Any] | None, replicas: Sequence[Upstream] = (),
         facts: GgufFacts = NO_FACTS) -> dict[str, Any]:
    """`/api/show` for a model; `props` is its llama-server's /props when it is up (context size,
    vision, tool support), else None (only what the gateway and the model file say).

    `<architecture>.context_length` is the context a request gets (llama-server's per-slot
    `n_ctx`) when the model is up, else the one it was trained for: clients size prompts by it.
    An embedding model (its file has a pooling type, Ollama's own test) is capable of "embedding"
    instead of "completion": clients offer models for chat or for embeddings by it."""
    capabilities = ["embedding" if facts.pooling_type is not None else "completion"]
    architecture = facts.architecture or "llama.cpp"
    info: dict[str, Any] = {"general.architecture": architecture}
    if facts.name:
        info["general.name"] = facts.name
    if facts.size_label:
        info["general.size_label"] = facts.size_label
    if facts.file_type is not None:
        info["general.file_type"] = facts.file_type
    if facts.context_length:
        info[f"{architecture}.context_length"] = facts.context_length
    if props:
        caps = props.get("chat_template_caps") or {}
        if caps.get("supports_tools"):
            capabilities.append("tools")
        if (props.get("modalities") or {}).get("vision"):
            capabilities.append("vision")
        n_ctx = (props.get("default_generation_settings") or {}).get("n_ctx")
        if n_ctx:
            info[f"{architecture}.context_length"] = n_ctx
    entry = model_entry(name, replicas, facts)
    return {"modified_at": entry["modified_at"], "details": entry["details"], "model_info": info,
            "capabilities": capabilities, "parameters": "", "template": (props or {}).get("chat_template", ""),
            "license": "", "modelfile": ""}
