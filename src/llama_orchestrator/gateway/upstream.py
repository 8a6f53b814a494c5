"""A lean HTTP/1.1 client for the gateway's upstream side: one keep-alive pool per llama-server.

    pool = UpstreamPool(keepalive_s=3.0)            # gateway.pool
    resp = await pool.request("POST", "127.0.0.1", 8080, "/v1/chat/completions", headers, body,
                              Timeouts(connect=5, read=600))
    resp.status, resp.headers["content-type"]       # header names lowercased
    while chunk := await resp.readany(): ...        # body bytes as they arrive (chunked decoded)
    # wire_sse=True: an SSE answer in chunked encoding comes as chunked bytes (resp.wire), whole
    # chunks only (one per read), terminator included, for a proxy to pass on as they are; then
    # resp.relay_to(client_transport) + await resp.relayed() writes them from data_received
    resp.close()                                    # back to the pool if complete, else the socket closes
    await pool.close()
    # or, without a task: resp.notify = callback, called at each step (gateway.exchange)

Why not aiohttp's client: per proxied stream it spent most of the gateway's CPU (request and
response objects, cookie and redirect machinery, a stream reader per response). This client does
only what forwarding needs: the request goes out in one write (method, path, headers, body bytes
as given), and the response parser (asyncio Protocol) understands a status line, headers,
Content-Length, chunked transfer-encoding and read-until-close. No redirects, no cookies, no
decompression, no proxies, no TLS (instances listen on loopback / the local network).

The pool that reuses the connections is `gateway.pool`.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

from llama_orchestrator.errors import UpstreamError
from llama_orchestrator.gateway.chunked import ChunkedDecoder, MalformedChunk, WireChunks
from llama_orchestrator.gateway.response_head import MalformedHead, body_framing, parse_response_head, split_head

if TYPE_CHECKING:
    from llama_orchestrator.gateway.pool import UpstreamPool

PAUSE_ABOVE = 256 * 1024  # buffered body bytes at which the socket stops being read


class ConnectFailed(UpstreamError):
    """The connection could not be made (refused, unreachable): the request never left."""


class UpstreamClosed(UpstreamError):
    """The connection ended (or was cut) before the response did; also a malformed response."""


class ConnectTimeout(TimeoutError):
    """No connection within `Timeouts.connect`."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float
    read: float | None = None  # longest wait for any byte (headers or body)
    total: float | None = None  # whole request, from send to the last body byte


@functools.lru_cache(maxsize=1024)
def address(base_url: str) -> tuple[str, int, str]:
    """`http://host:port[/prefix]` -> (host, port, prefix)."""
    parts = urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname:
        raise ConnectFailed(f"unsupported upstream address {base_url!r} (plain http://host:port only)")
    return parts.hostname, parts.port or 80, parts.path.rstrip("/")


class Response(asyncio.Protocol):
    """One connection, and the response currently being read on it."""

    def __init__(self, pool: UpstreamPool, key: tuple[str, int]) -> None:
        self._pool = pool
        self._key = key
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0
        self.in_pool = False
        self.after_stream = False  # pooled after an SSE answer (see UpstreamPool.closes_after_stream)
        # called where a waiting reader would be woken (head, body bytes, end, error, flow
        # control): the front door's fast lane follows a response by callbacks, without a task
        self.notify: Callable[[], None] | None = None
        self._method = "GET"
        self._wire_wanted = False
        self._reset()

    def _reset(self) -> None:
        self._buf = bytearray()
        self.head_done = False
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._remaining = -1  # Content-Length left; -1 = until close
        self._chunked: ChunkedDecoder | WireChunks | None = None
        self._wire_body: WireChunks | None = None  # `_chunked` when it is wire chunks
        self._eof = False
        self.failure: BaseException | None = None  # why the response ended early (UpstreamClosed)
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._keep = True
        self._deadline: float | None = None
        self._read_timeout: float | None = None
        self.received = False  # any byte of the current response
        self.wire = False  # the body comes as chunked wire bytes (gateway.chunked.WireChunks)
        self.status = 0
        self.headers: dict[str, str] = {}
        self.content_type = ""  # the media type of Content-Type, lowercased (set with the head)
        self._sink: asyncio.WriteTransport | None = None  # relay target (see `relay_to`)
        self.sink_state = ""  # "" relaying, "drain" paused for the sink, "gone" the sink closed
        self._sink_high = 0
        self._last_rx = 0.0
        self.first_relayed_at: float | None = None  # perf_counter of the first byte relayed

    # --- protocol --------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if self.in_pool and self.after_stream:
            self._pool.closes_after_stream.add(self._key)
        self.transport = None
        self._keep = False
        if not self._eof and self.failure is None:
            if self._remaining == -1 and self.head_done and self._chunked is None:
                self._eof = True  # a read-until-close body ends here
            else:
                self.failure = UpstreamClosed(
                    "the upstream closed the connection" + (f" ({exc})" if exc else "")
                )
        self._wake()

    def data_received(self, data: bytes) -> None:
        sink, wire = self._sink, self._wire_body
        if (sink is not None and wire is not None and not self.sink_state and self.failure is None
                and not self._eof and self.first_relayed_at is not None and wire.one_chunk(data)):
            # the relay's common case, one whole event: what the steps below do for it, fewer of them
            self._last_rx = self._loop.time()
            self._relay(sink, data)
            if self.sink_state:
                self._wake()
            return
        self.received = True
        self._last_rx = self._loop.time()
        if self._eof or self.failure is not None:
            self._keep = False  # bytes after the response: this connection is out of step, drop it
            if self.transport is not None:
                self.transport.close()
            return
        try:
            if not self.head_done:
                self._buf += data
                if (whole := split_head(self._buf)) is None:
                    return
                self._buf = bytearray()
                self._parse_head(whole[0])
                data = whole[1]
                if not self.head_done:  # a 1xx head: the real one follows
                    if data:
                        self.data_received(data)
                    return
                if self._eof:
                    self._wake()
                    return
            if self._chunked is not None:
                body = self._chunked
                body.feed(data, self._push)
                if body.done:
                    self._eof = True
                    self._keep = self._keep and not body.extra
            elif data:
                if self._remaining >= 0:
                    if len(data) > self._remaining:
                        self._keep = False
                        data = data[: self._remaining]
                    self._remaining -= len(data)
                    if self._remaining == 0:
                        self._eof = True
                self._push(data)
        except (UpstreamClosed, MalformedChunk, MalformedHead) as exc:
            self.failure = exc if isinstance(exc, UpstreamClosed) else UpstreamClosed(str(exc))
            self._keep = False
        if self._sink is None or self._eof or self.failure is not None or self.sink_state:
            self._wake()  # relaying, the reader sleeps: its read timeout counts from _last_rx

    def eof_received(self) -> bool | None:
        return False  # let the transport close; connection_lost decides what the end means

    def _parse_head(self, raw: bytes) -> None:
        head = parse_response_head(raw)
        if not head.status:  # 1xx: skip it and wait for the real head
            return
        framing, length = body_framing(head, self._method)
        self.status, self.headers, self.head_done = head.status, head.headers, True
        self.content_type = head.content_type
        self._keep = self._keep and head.keep_alive and framing != "close"  # "close": read until it closes
        if framing == "chunked":
            self.wire = self._wire_wanted and self.content_type == "text/event-stream"
            self._wire_body = WireChunks() if self.wire else None
            self._chunked = self._wire_body or ChunkedDecoder()
        else:
            self._remaining = length
            self._eof = framing == "none" or length == 0

    def _push(self, data: bytes) -> None:
        sink = self._sink
        if sink is not None and data:
            self._relay(sink, data)
        elif data:
            self._chunks.append(data)
            self._buffered += len(data)
            if self._buffered > PAUSE_ABOVE and not self._paused and self.transport is not None:
                self._paused = True
                self.transport.pause_reading()

    def _relay(self, sink: asyncio.WriteTransport, data: bytes) -> None:
        if sink.is_closing():
            self.sink_state = "gone"
            return
        if self.first_relayed_at is None:
            self.first_relayed_at = time.perf_counter()
        sink.write(data)
        if sink.get_write_buffer_size() > self._sink_high and self.transport is not None:
            self.sink_state = "drain"  # the client reads slower than the upstream writes
            self.transport.pause_reading()

    def relay_to(self, sink: asyncio.WriteTransport, head: bytes = b"") -> None:
        """From now on write the body's wire bytes straight to `sink` as they arrive (in
        `data_received`, no reader wake-up per chunk); `relayed()` waits for the end. Wire mode
        only: every write ends on a chunk boundary, so the caller may append a chunk later.
        `head` (the client's response head) leaves in the same send as the bytes in hand."""
        assert self.wire
        self._sink = sink
        self._sink_high = sink.get_write_buffer_limits()[1]
        self._last_rx = self._loop.time()
        if self._chunks:  # came in while the caller was still writing its head
            data = b"".join(self._chunks)
            self._chunks.clear()
            self._buffered = 0
            self._relay(sink, head + data)
        elif head:
            sink.write(head)
        if self._paused and self.transport is not None:
            self._paused = False  # from here on only the sink's fill level pauses reading
            if not self.sink_state:
                self.transport.resume_reading()

    async def relayed(self) -> str:
        """Wait while the body is relayed: "eof" once it has all gone to the sink, "drain" when
        the sink's buffer is full (reading is paused: drain the sink, then `resume_relay`),
        "gone" when the sink closed. Raises UpstreamClosed, or TimeoutError after the read
        timeout without a byte from the upstream."""
        while True:
            if self.sink_state:
                return self.sink_state
            if self.failure is not None:
                raise self.failure
            if self._eof:
                return "eof"
            try:
                await self._wait()
            except TimeoutError:
                idle = self._loop.time() - self._last_rx
                if self._read_timeout is None or idle >= self._read_timeout or self._deadline_passed():
                    raise

    def resume_relay(self) -> None:
        if self.sink_state == "drain":
            self.sink_state = ""
            if self.transport is not None:
                self.transport.resume_reading()

    def _deadline_passed(self) -> bool:
        return self._deadline is not None and self._loop.time() >= self._deadline

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.notify is not None:
            self.notify()

    async def _wait(self) -> None:
        """Until something arrives, the connection ends, or a timeout passes (TimeoutError)."""
        timeout = self._read_timeout
        if timeout is not None and self._sink is not None:  # relaying: counted from the last byte
            timeout = max(0.0, self._last_rx + timeout - self._loop.time())
        if self._deadline is not None:
            left = self._deadline - self._loop.time()
            timeout = left if timeout is None else min(timeout, left)
        self._waiter = waiter = self._loop.create_future()
        handle = None if timeout is None else self._loop.call_later(max(timeout, 0.0), self._time_out, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if handle is not None:
                handle.cancel()

    @staticmethod
    def _time_out(waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_exception(TimeoutError())

    # --- request / response ----------------------------------------------------------------------
    def _send(self, method: str, request: bytes, timeouts: Timeouts, wire_sse: bool) -> None:
        self._reset()
        self._method = method
        self._wire_wanted = wire_sse
        self._read_timeout = timeouts.read
        self._deadline = None if timeouts.total is None else self._loop.time() + timeouts.total
        self._last_rx = self._loop.time()
        assert self.transport is not None
        self.transport.write(request)

    async def _head(self) -> None:
        while not self.head_done and self.failure is None:
            await self._wait()
        if self.failure is not None:
            raise self.failure

    def has_body(self) -> bool:
        """Whether body bytes (or the body's end) are already in hand: `readany` will not wait."""
        return bool(self._chunks) or self._eof

    def at_eof(self) -> bool:
        return self._eof and not self._chunks

    @property
    def idle_s(self) -> float:
        """Seconds since the last byte from the upstream (or since the request was sent)."""
        return self._loop.time() - self._last_rx

    def take(self) -> bytes:
        """The body bytes received so far, without waiting (b"" if none)."""
        chunks = self._chunks
        if not chunks:
            return b""
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    async def readany(self) -> bytes:
        """The body bytes received so far (waiting for some), or b"" at the end of the body.

        Raises UpstreamClosed if the connection ended (or was cut) first, TimeoutError if nothing
        came within the read timeout.
        """
        while not self._chunks:
            if self.failure is not None:
                raise self.failure
            if self._eof:
                return b""
            await self._wait()
        return self.take()

    async def read(self) -> bytes:
        parts = []
        while chunk := await self.readany():
            parts.append(chunk)
        return b"".join(parts)

    def cut(self, reason: str) -> None:
        """End the response from outside: the reader sees UpstreamClosed(reason)."""
        if not self._eof and self.failure is None:
            self.failure = UpstreamClosed(reason)
            self._keep = False
            self._wake()

    def close(self) -> None:
        """Back to the pool if the response is complete and reusable, else close the socket now
        (so the upstream sees the client leave and frees the slot)."""
        self._sink = None
        self.notify = None
        self.in_pool = False  # what happens to the socket now is our doing, not the server's
        transport = self.transport
        if transport is None:
            return
        if self._eof and self.failure is None and self._keep and not self._chunks and not self._pool.closed:
            self.after_stream = self.content_type == "text/event-stream"
            if self.after_stream and self._key in self._pool.closes_after_stream:
                self.transport = None
                transport.close()  # the server would close it anyway, perhaps after we reused it
            else:
                self._pool.release(self)
        else:
            self.transport = None
            transport.abort()

    def discard(self) -> None:
        """Close the socket, whatever state the response is in."""
        self._keep = False
        self.close()
