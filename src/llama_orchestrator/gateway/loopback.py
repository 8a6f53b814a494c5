"""Requests the gateway sends to itself: a translated API (Ollama's, OpenAI's fill-in-the-middle
completions) goes through the gateway's own routes over loopback, so it gets everything any
request gets (keys and their scopes, request filters, on-demand starts and holds, the queue,
replicas, metrics), and the translation only reshapes what goes in and what comes back.

    up = await loopback.send(request, "/infill", body)   # the client's key goes along
    raise_for_status(up)                                  # RelayedFailure, with who produced it
    answer = await whole_object(up)                       # or the whole answer, parsed
    async for chunk in sse_objects(up): ...               # or its SSE events, parsed
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from llama_orchestrator.gateway.auth import presented_key
from llama_orchestrator.gateway.errors import INSTANCE_HEADER, SOURCE_HEADER, HTTPFailure, message_of
from llama_orchestrator.gateway.pool import UpstreamPool
from llama_orchestrator.gateway.upstream import Response, Timeouts, UpstreamClosed


class RelayedFailure(HTTPFailure):
    """The inner request's own error answer, passed on with who produced it (the gateway, or the
    llama-server named by its instance header)."""

    def __init__(self, message: str, *, status: int, retry_after_s: int | None, origin: dict[str, str]) -> None:
        super().__init__(message, status=status, retry_after_s=retry_after_s)
        self.origin = origin


def origin(up: Response, ok: bool = False) -> dict[str, str]:
    """The inner answer's source and instance headers; for a success, only the instance (the
    answer the client gets is the gateway's translation)."""
    names = (INSTANCE_HEADER,) if ok else (SOURCE_HEADER, INSTANCE_HEADER)
    return {name: up.headers[name.lower()] for name in names if name.lower() in up.headers}


@dataclass(frozen=True)
class Loopback:
    pool: Callable[[], UpstreamPool]
    address: Callable[[], tuple[str, int]]  # where the gateway itself is reached
    timeouts: Callable[[], Timeouts]

    async def send(self, request: web.BaseRequest, path: str, body: dict[str, Any]) -> Response:
        """POST `body` to the gateway's own `path` with the client's key; the answer, whatever
        its status (502 when the gateway could not be reached)."""
        host, port = self.address()
        headers = {"Content-Type": "application/json"}
        if key := presented_key(request.headers):
            headers["Authorization"] = f"Bearer {key}"
        try:
            return await self.pool().request("POST", host, port, path, headers, json.dumps(body).encode(),
                                             self.timeouts())
        except (UpstreamClosed, TimeoutError, OSError) as exc:
            raise HTTPFailure(f"the gateway could not relay the request ({exc})", status=502) from exc


async def raise_for_status(up: Response) -> None:
    """RelayedFailure (the answer's message, status, Retry-After and origin) for an error answer."""
    if up.status < 400:
        return
    try:
        message = message_of(await up.read(), 300)
    finally:
        up.close()
    retry = up.headers.get("retry-after", "")
    raise RelayedFailure(message, status=up.status, retry_after_s=int(retry) if retry.isdigit() else None,
                         origin=origin(up))


async def whole_object(up: Response) -> dict[str, Any]:
    """The whole answer as a JSON object; an OpenAI-shaped error holding its text when it is not JSON."""
    data = await up.read()
    try:
        parsed = json.loads(data)
    except ValueError:
        return {"error": {"message": data.decode(errors="replace")[:300]}}
    return parsed if isinstance(parsed, dict) else {}


def event_object(event: bytes) -> dict[str, Any] | None:
    """One SSE event's data as a JSON object; None for a comment, `[DONE]` or anything else."""
    data = b"".join(line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:"))
    if not data or data == b"[DONE]":
        return None
    try:
        parsed = json.loads(data)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


async def sse_objects(up: Response) -> AsyncIterator[dict[str, Any]]:
    """The answer's SSE events as JSON objects, as they arrive."""
    pending = b""
    while data := await up.readany():
        pending += data
        *events, pending = pending.split(b"\n\n")
        for event in events:
            if (parsed := event_object(event)) is not None:
                yield parsed
