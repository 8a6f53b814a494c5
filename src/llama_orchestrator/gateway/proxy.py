"""Forwarding one request to one llama-server, and its answer back, unchanged.

The upstream side is `gateway.upstream` (a lean HTTP/1.1 client with a keep-alive pool per
instance). The request body is the client's original bytes (read once, never re-serialised). An
SSE answer's chunks go to the client's socket as they arrive, byte for byte (the upstream's own
chunked framing: no line splitting, no event parsing, no coalescing), written by the upstream
connection itself (`_splice`); a held stream or an HTTP/1.0 client gets them read and written
per chunk instead (`_copy`). Anything else is read whole and returned with the upstream's status
and content type; llama-server's own errors therefore pass through untouched, marked
`X-Llama-Orch-Source: upstream`.

Failure handling (reliability scenarios 25-26):
- the client goes away (aiohttp cancels the handler, or a write fails): the upstream response is
  closed at once, which closes its socket, so llama-server cancels the task and frees the slot;
- the upstream goes away or stalls past the read timeout mid-stream: the client gets an SSE `error`
  event and the end of the stream, never a hang;
- the upstream cannot be reached, or drops the connection before answering: 503 + Retry-After;
  a refused connection raises `UpstreamRefused`, and the server then tries another ready
  replica of the same model (the request never reached the dead one);
- the upstream answers 503 (llama-server is loading its model: it restarted since the last probe):
  it did no work, so `UpstreamNotReady` sends the request to another ready replica too, and
  with none left the upstream's own 503 goes back to the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_writer import StreamWriter

from llama_orchestrator.core.routing import Upstream
from llama_orchestrator.core.traffic_health import Evidence, status_evidence
from llama_orchestrator.gateway import upstream as up_client
from llama_orchestrator.gateway.errors import (
    INSTANCE_HEADER,
    SOURCE_HEADER,
    HTTPFailure,
    Unavailable,
    message_of,
    shutting_down,
    sse_error_event,
)
from llama_orchestrator.gateway.pool import UpstreamPool
from llama_orchestrator.gateway.upstream import Timeouts

# X-Conversation-Id: llama-server keeps a stream that carries it for the client to resume after a
# disconnect (GET /v1/stream?conv_id=...), as llama.cpp's web UI does after a page reload
FORWARDED_REQUEST_HEADERS = ("Content-Type", "Accept", "X-Conversation-Id")
# On an instance's own routes (`/instances/<name>/...`) only: what its web UI's files need to load
# through the gateway as from llama-server itself (gzipped, cached, redirected). No conditional
# request headers: a 304 would come without a body length.
NATIVE_REQUEST_HEADERS = ("Accept-Encoding",)
NATIVE_ANSWER_HEADERS = (
    "Content-Encoding", "Location", "Cache-Control", "ETag", "Last-Modified",
    "Cross-Origin-Embedder-Policy", "Cross-Origin-Opener-Policy",  # the web UI's Python sandbox needs them
)
UNREACHABLE_RETRY_AFTER_S = 2


class GatewayTimeout(HTTPFailure):
    status = 504
    type = "timeout_error"


class UpstreamRefused(Unavailable):
    """Nothing listens at the instance's port (it died, or is restarting): the request never
    reached it, so sending it to another replica is safe."""

    def __init__(self, instance: str, message: str) -> None:
        super().__init__(message, code="upstream_unreachable", retry_after_s=UNREACHABLE_RETRY_AFTER_S)
        self.instance = instance


class UpstreamNotReady(UpstreamRefused):
    """The instance answered 503 (still loading): it did no work, so another replica may take
    the request. `answer` is the upstream's own response, for when no other replica can."""

    def __init__(self, instance: str, answer: web.Response) -> None:
        super().__init__(instance, f"instance {instance!r} is not ready (503)")
        self.answer = answer


class RelayedStream(web.StreamResponse):
    """The client's side of a relayed SSE answer.

    `wire=True`: the body written is the upstream's chunked encoding in whole chunks (one per
    read, gateway.chunked; the terminator included), so the writer adds no framing of its own;
    `reframe()` turns its framing back on, to append an error event after the last whole chunk.
    `coalesce=True`: the head waits for the first body bytes and leaves in the same send
    (aiohttp's StreamResponse sends it at once, on its own: one more syscall per stream).
    """

    def __init__(self, *, status: int, headers: dict[str, str], wire: bool, coalesce: bool) -> None:
        super().__init__(status=status, headers=headers)
        self.wire = wire
        self._send_headers_immediately = not coalesce

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        writer = await super().prepare(request)
        if self.wire and isinstance(writer, StreamWriter):
            writer.chunked = False
        return writer

    def send_head(self) -> None:
        """Send the head now if it is still held (before writing to the socket directly)."""
        writer = self._payload_writer
        if isinstance(writer, StreamWriter):
            writer.send_headers()

    async def drain(self) -> None:
        writer = self._payload_writer
        if writer is not None:
            await writer.drain()

    def reframe(self) -> None:
        writer = self._payload_writer
        if self.wire and isinstance(writer, StreamWriter):
            writer.chunked = True
            self.wire = False


@dataclass(slots=True)
class Outcome:
    """What happened to one proxied request, for metrics and the instance's passive health."""

    status: int = 0
    first_byte_s: float | None = None
    stream_error: bool = False
    client_gone: bool = False
    failure: str | None = None  # how the instance failed the request, if it did

    def failed(self, exc: HTTPFailure) -> HTTPFailure:
        """`exc`, noted as how the instance failed the request."""
        self.failure = exc.message
        return exc

    def evidence(self) -> Evidence:
        """What the request says of the instance's health (core.traffic_health)."""
        if self.failure is not None:
            return self.failure
        return status_evidence(self.status) if self.status else None


def upstream_headers(request_headers: Mapping[str, str], upstream: Upstream) -> dict[str, str]:
    """`request_headers`: aiohttp's (any case) or names lowercased (gateway.http1)."""
    headers = {name: value for name in FORWARDED_REQUEST_HEADERS if (value := request_headers.get(name.lower()))}
    if upstream.api_key:
        headers["Authorization"] = f"Bearer {upstream.api_key}"
    return headers


async def forward(
    pool: UpstreamPool,
    request: web.BaseRequest,
    upstream: Upstream,
    path_qs: str,
    body: bytes | None,
    timeout: Timeouts,
    outcome: Outcome,
    closing: Callable[[], bool] = lambda: False,
    live: set[up_client.Response] | None = None,
    started: web.StreamResponse | None = None,
    native: bool = False,
) -> web.StreamResponse:
    """Send `body` to `upstream` at `path_qs` with the request's method and relay the answer.

    From the request sent to the end of the answer, the upstream response sits in `live`, so
    `cut_all(live)` can end it.
    A pooled connection the server had already closed is retried inside `pool.request`.
    `started` is an SSE answer already begun (gateway.holding): the stream goes into it, and
    an answer that is not a stream becomes an event in it. `native`: one of the instance's own
    routes, whose answers keep their encoding and caching headers (NATIVE_ANSWER_HEADERS).
    """
    sent_at = time.perf_counter()
    outcome.failure = None  # a replica tried before this one (it refused) is not this one's failure
    headers = upstream_headers(request.headers, upstream)
    if native:
        headers.update((n, v) for n in NATIVE_REQUEST_HEADERS if (v := request.headers.get(n)))
    method = "GET" if request.method == "HEAD" else request.method  # aiohttp drops the body for HEAD
    try:
        host, port, prefix = up_client.address(upstream.base_url)
        up = await pool.request(
            method, host, port, prefix + path_qs, headers, body, timeout,
            wire_sse=started is None and request.version >= aiohttp.HttpVersion11, live=live,
        )
    except (up_client.ConnectFailed, up_client.UpstreamClosed, TimeoutError) as exc:
        if closing():  # the gateway's stop cut the request (or closed the pool), not the instance
            raise shutting_down() from exc
        if isinstance(exc, up_client.ConnectFailed):
            refused = UpstreamRefused(upstream.name, f"instance {upstream.name!r} could not be reached ({exc})")
            raise outcome.failed(refused) from exc
        if isinstance(exc, up_client.UpstreamClosed):
            raise outcome.failed(unreachable(upstream.name, exc)) from exc
        raise outcome.failed(no_answer(upstream.name)) from exc
    try:
        outcome.status = up.status
        if up.content_type == "text/event-stream":
            return await _relay_stream(request, up, upstream, sent_at, outcome, closing, started)
        try:
            data = await up.read()
        except (up_client.UpstreamClosed, TimeoutError) as exc:
            if closing():
                raise shutting_down() from exc
            raise outcome.failed(failed_answering(upstream.name, type(exc).__name__)) from exc
        outcome.first_byte_s = time.perf_counter() - sent_at
        if up.status >= 500:
            outcome.failure = status_evidence(up.status, data) or None  # with llama-server's message
        answer_headers = {SOURCE_HEADER: "upstream", INSTANCE_HEADER: upstream.name}
        for name in ("Content-Type", "Retry-After", *(NATIVE_ANSWER_HEADERS if native else ())):
            if value := up.headers.get(name.lower()):
                answer_headers[name] = value
        answer = web.Response(status=up.status, body=data, headers=answer_headers)
        if up.status == 503:
            raise UpstreamNotReady(upstream.name, answer)
        if started is not None:
            return await _answer_as_event(started, up.status, data)
        return answer
    finally:
        if live is not None:
            live.discard(up)
        up.close()  # back to the pool after a complete read; otherwise drops the socket so the slot frees


def cut_all(live: set[up_client.Response], reason: str) -> None:
    """End every relay in progress: each sees an upstream error and closes its client stream cleanly."""
    for up in list(live):
        up.cut(reason)


async def _answer_as_event(started: web.StreamResponse, status: int, data: bytes) -> web.StreamResponse:
    """A whole (non-SSE) upstream answer written into an SSE answer already begun: an error
    becomes an `error` event with llama-server's message; anything else a `data` event."""
    with contextlib.suppress(ConnectionError):
        if status >= 400:
            message = message_of(data)
            await started.write(sse_error_event(f"HTTP {status} from the instance: {message}", "upstream_error",
                                                "upstream_error"))
        else:
            await started.write(b"data: " + data + b"\n\n")
        await started.write_eof()
    return started


async def _relay_stream(
    request: web.BaseRequest,
    up: up_client.Response,
    upstream: Upstream,
    sent_at: float,
    outcome: Outcome,
    closing: Callable[[], bool],
    started: web.StreamResponse | None = None,
) -> web.StreamResponse:
    resp: web.StreamResponse
    if started is not None:
        resp = started
    else:
        # body bytes already in hand leave in the same send as the head; otherwise the head goes
        # at once, as the upstream sent it (a long prompt may keep the first token a while)
        resp = RelayedStream(status=up.status, headers={
            "Content-Type": up.headers.get("content-type", "text/event-stream"),
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            SOURCE_HEADER: "upstream",
            INSTANCE_HEADER: upstream.name,
        }, wire=up.wire, coalesce=up.has_body())
        await resp.prepare(request)
    try:
        try:
            if isinstance(resp, RelayedStream) and resp.wire and request.transport is not None:
                return await _splice(resp, up, request.transport, sent_at, outcome)
            return await _copy(resp, up, sent_at, outcome)
        except (up_client.UpstreamClosed, TimeoutError) as exc:
            outcome.stream_error = True
            if closing():
                reason = "the gateway is shutting down"
            else:
                timed_out = isinstance(exc, TimeoutError)
                reason = outcome.failure = describe_cut(upstream.name, timed_out, type(exc).__name__)
            if isinstance(resp, RelayedStream):
                resp.reframe()  # the client has whole chunks only: the error event follows them
            with contextlib.suppress(ConnectionError, aiohttp.ClientConnectionResetError):
                await resp.write(sse_error_event(reason))
                await resp.write_eof()
            return resp
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            outcome.client_gone = True  # the caller closes the upstream response
            return resp
    except asyncio.CancelledError:
        outcome.client_gone = True
        up.close()
        raise


async def _copy(
    resp: web.StreamResponse, up: up_client.Response, sent_at: float, outcome: Outcome
) -> web.StreamResponse:
    """Each read of the upstream's body written to the client as it arrives."""
    while chunk := await up.readany():
        if outcome.first_byte_s is None:
            outcome.first_byte_s = time.perf_counter() - sent_at
        if up.at_eof():
            # the upstream's answer is complete: its last bytes and the end of the client's
            # chunked body leave in one send instead of two
            await resp.write_eof(chunk)
            return resp
        await resp.write(chunk)
    await resp.write_eof()
    return resp


async def _splice(
    resp: RelayedStream, up: up_client.Response, sink: asyncio.Transport, sent_at: float, outcome: Outcome
) -> web.StreamResponse:
    """The upstream's chunks written to the client's socket as they arrive, by the upstream
    connection itself (`relay_to`): no wake-up of this task per token, which was most of the
    gateway's CPU per stream on a real llama-server. Bytes that came with the head go first,
    through aiohttp, with the head; this task only waits for the end and for flow control."""
    if up.has_body():
        chunk = await up.readany()
        outcome.first_byte_s = time.perf_counter() - sent_at
        if up.at_eof():
            await resp.write_eof(chunk)
            return resp
        await resp.write(chunk)
    else:
        resp.send_head()
    up.relay_to(sink)
    while (state := await up.relayed()) == "drain":
        await resp.drain()
        up.resume_relay()
    if outcome.first_byte_s is None and up.first_relayed_at is not None:
        outcome.first_byte_s = up.first_relayed_at - sent_at
    if state == "gone":
        outcome.client_gone = True
        return resp
    await resp.write_eof()  # the terminating chunk went with the body: this only ends the response
    return resp


# What went wrong with an instance, worded once for both lanes (this module and gateway.exchange).


def unreachable(instance: str, detail: object) -> Unavailable:
    """The connection was lost before the answer's head."""
    return Unavailable(f"instance {instance!r} could not be reached (UpstreamClosed: {detail})",
                       code="upstream_unreachable", retry_after_s=UNREACHABLE_RETRY_AFTER_S)


def no_answer(instance: str) -> GatewayTimeout:
    return GatewayTimeout(f"instance {instance!r} did not answer within the timeout", code="upstream_timeout")


def failed_answering(instance: str, cause: str) -> Unavailable:
    """A whole (non-SSE) answer was cut short."""
    return Unavailable(f"instance {instance!r} failed while answering ({cause})",
                       code="upstream_failed", retry_after_s=UNREACHABLE_RETRY_AFTER_S)


def describe_cut(instance: str, timed_out: bool, cause: str) -> str:
    """The error event that ends a stream the instance stopped sending."""
    if timed_out:
        return f"instance {instance!r} sent nothing for too long; the stream was cut"
    return f"instance {instance!r} closed the stream before it ended ({cause})"
