"""OpenAI's fill-in-the-middle completions: `/v1/completions` with a `suffix`, as code-completion
plugins send it to any OpenAI-compatible server.

llama-server's `/v1/completions` ignores `suffix` (the prompt alone is completed, with no error),
so such a request is sent to llama.cpp's `/infill` through the gateway itself (gateway.loopback:
keys, queue, replicas and metrics apply) and its answer, in llama.cpp's own shape, comes back as
an OpenAI text completion: one object, or SSE chunks ending with `[DONE]`. A model without
fill-in-the-middle tokens gets llama-server's own 501. Requests without a suffix are not touched.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from llama_orchestrator.gateway.catalog import parse_json
from llama_orchestrator.gateway.errors import SOURCE_HEADER, BadRequest, HTTPFailure, sse_error_event
from llama_orchestrator.gateway.loopback import Loopback, origin, sse_objects, whole_object
from llama_orchestrator.gateway.upstream import UpstreamClosed

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
PATHS = ("/v1/completions", "/completions")


def wants_infill(body: bytes) -> bool:
    """Whether a completion body may carry a suffix (the fast lane's cheap look; `infill_body`
    decides)."""
    return b'"suffix"' in body


def infill_body(parsed: dict[str, Any]) -> dict[str, Any] | None:
    """The `/infill` body for an OpenAI completion with a non-empty `suffix`; None without one."""
    suffix = parsed.get("suffix")
    if not suffix:
        return None
    prompt = parsed.get("prompt", "")
    if not isinstance(suffix, str) or not isinstance(prompt, str):
        raise BadRequest("with a `suffix`, `prompt` and `suffix` must be strings", code="invalid_suffix",
                         param="suffix")
    out = {k: v for k, v in parsed.items() if k not in ("prompt", "suffix", "stream_options", "echo", "n")}
    out.update(input_prefix=prompt, input_suffix=suffix)
    return out


def openai_shape(answer: dict[str, Any]) -> dict[str, Any]:
    """llama.cpp's own answer or chunk (`/infill`, `/completion`: content, stop, stop_type) in the
    shape of an OpenAI text completion or chunk; an OpenAI one as it is."""
    if "choices" in answer or "content" not in answer:
        return answer
    finish = ("length" if answer.get("stop_type") == "limit" else "stop") if answer.get("stop") else None
    text = answer.get("content") or ""
    shaped: dict[str, Any] = {"choices": [{"text": text, "delta": {"content": text}, "finish_reason": finish}]}
    if answer.get("stop"):  # the last one carries the counts
        shaped["usage"] = {"prompt_tokens": answer.get("tokens_evaluated") or 0,
                           "completion_tokens": answer.get("tokens_predicted") or 0}
        shaped["timings"] = answer.get("timings") or {}
    return shaped


def completion(native: dict[str, Any], model: str, ident: str, created: int) -> dict[str, Any]:
    """llama.cpp's answer (or one chunk of it) as an OpenAI text completion (chunk)."""
    shaped = openai_shape(native)
    choice = (shaped.get("choices") or [{}])[0]
    out: dict[str, Any] = {
        "id": ident, "object": "text_completion", "created": created, "model": model,
        "choices": [{"text": choice.get("text", ""), "index": 0, "logprobs": None,
                     "finish_reason": choice.get("finish_reason")}],
    }
    if usage := shaped.get("usage"):
        usage = {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}
        out["usage"] = usage
    return out


class FimCompletions:
    """The handler of `/v1/completions` on aiohttp's path: `/infill` for a suffix, else `plain`."""

    def __init__(self, loopback: Loopback, plain: Handler) -> None:
        self.loopback = loopback
        self.plain = plain

    async def complete(self, request: web.BaseRequest) -> web.StreamResponse:
        raw = await request.read()
        parsed = parse_json(raw) if wants_infill(raw) else None
        body = infill_body(parsed) if isinstance(parsed, dict) else None
        if body is None:
            return await self.plain(request)
        up = await self.loopback.send(request, "/infill", body)
        try:
            if up.status >= 400:  # the inner answer as it is: OpenAI-shaped, with who produced it
                return web.Response(status=up.status, body=await up.read(), content_type="application/json",
                                    headers=origin(up))
            model = str(body.get("model") or "")
            ident, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
            headers = {SOURCE_HEADER: "gateway", **origin(up, ok=True)}
            if not body.get("stream"):
                answer = await whole_object(up)
                if "content" not in answer:
                    raise HTTPFailure(f"llama-server's /infill answer has no content: {str(answer)[:200]}", status=502)
                return web.json_response(completion(answer, model, ident, created), headers=headers)
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                                   **headers})
            await response.prepare(request)
            try:
                async for chunk in sse_objects(up):
                    event = chunk if "error" in chunk else completion(chunk, model, ident, created)
                    await response.write(b"data: " + json.dumps(event).encode() + b"\n\n")
            except (UpstreamClosed, TimeoutError) as exc:  # the answer has begun: end it with the reason
                await response.write(sse_error_event(f"the stream ended early ({exc})"))
            else:
                await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            return response
        finally:
            up.close()  # a client that left: the socket closes, and the gateway frees the slot
