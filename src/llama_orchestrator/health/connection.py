"""`/health` over a bare asyncio connection: a `ProbeConnection` kept alive per child when probes
come faster than llama-server closes idle connections (5 s), otherwise a fresh one per probe
(`raw_get`). No aiohttp session and no task per probe: what keeps a daemon polling 100
instances at 1 Hz within its budget."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

from llama_orchestrator.health.result import ProbeResult

logger = logging.getLogger(__name__)


class _GetProtocol(asyncio.Protocol):
    """Collect one Connection: close answer (capped at 64 KiB) without the streams layer's overhead."""

    def __init__(self, request: bytes, done: asyncio.Future[bytes]) -> None:
        self._request = request
        self._done = done
        self._chunks: list[bytes] = []
        self._size = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass
        self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size >= 65536:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done.done():
            if exc is not None and not self._chunks:
                self._done.set_exception(exc)
            else:
                self._done.set_result(b"".join(self._chunks))


def _request(netloc: str, path: str, api_key: str | None, *, keep_alive: bool) -> bytes:
    auth = f"Authorization: Bearer {api_key}\r\n" if api_key else ""
    connection = "keep-alive" if keep_alive else "close"
    return f"GET {path} HTTP/1.1\r\nHost: {netloc}\r\n{auth}Connection: {connection}\r\n\r\n".encode("ascii")


def _interpret(status: int, body: bytes, elapsed: float) -> ProbeResult:
    if status == 200:
        return ProbeResult(True, 200, "ok", elapsed)
    text = body.decode("utf-8", errors="replace")
    loading = status == 503 and "Loading model" in text
    detail = "loading model" if loading else f"HTTP {status}: {text[:120]}"
    return ProbeResult(False, status, detail, elapsed, loading=loading)


async def raw_get(base_url: str, path: str, timeout_s: float, api_key: str | None = None) -> ProbeResult:
    """One GET with Connection: close; the status line and at most 64 KiB of the answer are read."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    started = time.monotonic()
    request = _request(parts.netloc, path, api_key, keep_alive=False)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()
    transport: asyncio.BaseTransport | None = None
    try:
        async with asyncio.timeout(timeout_s):
            transport, _ = await loop.create_connection(lambda: _GetProtocol(request, done), host, port)
            data = await done
    except TimeoutError:
        return ProbeResult(False, None, f"no answer within {timeout_s:g} s", time.monotonic() - started)
    except OSError as exc:
        return ProbeResult(False, None, f"connection failed: {exc.strerror or exc.__class__.__name__}",
                           time.monotonic() - started)
    finally:
        if transport is not None:
            transport.close()
    elapsed = time.monotonic() - started
    head, _, body = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        return ProbeResult(False, None, "not an HTTP answer", elapsed)
    return _interpret(int(status_line[1]), body, elapsed)


KEEPALIVE_MAX_INTERVAL_S = 4.0
"""Reuse a probe connection only below this interval: llama-server (cpp-httplib) closes idle ones at 5 s."""
ANSWER_CAP = 65536


class _BadAnswer(Exception):
    """The bytes on the connection are not one well-framed HTTP answer."""


class _ClosedEarly(Exception):
    """The connection ended before a single byte of the answer arrived."""

    def __init__(self, exc: Exception | None) -> None:
        super().__init__(exc)
        self.exc = exc


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes
    reusable: bool


def _chunked_end(data: bytes) -> int | None:
    """Where a chunked body ends in `data` (None while incomplete); the body is not decoded."""
    pos = 0
    while True:
        line_end = data.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size_text = data[pos:line_end].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _BadAnswer("bad chunk size") from None
        if size == 0:
            trailer_end = data.find(b"\r\n\r\n", line_end)  # the empty line after any trailers
            return None if trailer_end < 0 else trailer_end + 4
        pos = line_end + 2 + size + 2
        if pos > len(data):
            return None


def _parse(buffer: bytes, eof: bool) -> _Answer | None:
    """One answer from the start of `buffer`: None while incomplete; `eof` when the peer has closed."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        if eof or len(buffer) >= ANSWER_CAP:
            raise _BadAnswer("no complete head")
        return None
    lines = buffer[:head_end].split(b"\r\n")
    status_line = lines[0].split()
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/") or not status_line[1].isdigit():
        raise _BadAnswer("bad status line")
    status = int(status_line[1])
    length: int | None = None
    chunked = False
    reusable = status_line[0] == b"HTTP/1.1"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            if not value.strip().isdigit():
                raise _BadAnswer("bad Content-Length")
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection" and b"close" in value.lower():
            reusable = False
    body_start = head_end + 4
    rest = buffer[body_start:]
    if status in (204, 304) or 100 <= status < 200:
        length, chunked = 0, False
    if chunked:
        end = _chunked_end(rest)
        if end is None:
            if eof or len(buffer) >= ANSWER_CAP:
                return _Answer(status, rest, reusable=False)
            return None
        return _Answer(status, rest[:end], reusable=reusable and end == len(rest))
    if length is None:  # framed by the close: read until then
        if eof or len(buffer) >= ANSWER_CAP:
            return _Answer(status, rest, reusable=False)
        return None
    if len(rest) < length:
        if eof or len(buffer) >= ANSWER_CAP:
            return _Answer(status, rest, reusable=False)
        return None
    return _Answer(status, rest[:length], reusable=reusable and len(rest) == length)


class _KeepAliveProtocol(asyncio.Protocol):
    """The bytes of one persistent connection; `exchange` sends a request and waits for its answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self._buffer = bytearray()
        self._waiter: asyncio.Future[_Answer] | None = None

    @property
    def idle_clean(self) -> bool:
        """Still open and nothing unasked-for has arrived since the last answer."""
        return not self.lost and not self._buffer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._waiter is not None and not self._waiter.done():
            self._settle(eof=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if not self._buffer:
                waiter.set_exception(_ClosedEarly(exc))
            else:
                self._settle(eof=True)

    def _settle(self, *, eof: bool) -> None:
        assert self._waiter is not None
        try:
            answer = _parse(bytes(self._buffer), eof)
        except _BadAnswer as exc:
            self._waiter.set_exception(exc)
            return
        if answer is not None:
            self._buffer.clear()
            self._waiter.set_result(answer)

    async def exchange(self, request: bytes) -> _Answer:
        assert self.transport is not None
        self._buffer.clear()
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            self.transport.write(request)
            return await self._waiter
        finally:
            self._waiter = None


class ProbeConnection:
    """A kept-alive HTTP/1.1 connection to one llama-server for its frequent GETs (`/health`).

    Reusing the connection saves the connect/accept/close of a fresh one on every probe, which is
    most of a probe's CPU. Reconnects transparently when the server closed the idle connection
    (one retry, only when nothing of the answer arrived); after a timeout, a parse error or any
    other trouble the connection is dropped, so a late answer is never read as the next probe's.
    Owned by one task; `close()` is synchronous and idempotent.
    """

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._netloc = parts.netloc
        self._proto: _KeepAliveProtocol | None = None
        self.connects = 0

    @property
    def is_open(self) -> bool:
        return self._proto is not None

    def close(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.close()

    async def get(self, path: str, timeout_s: float, api_key: str | None = None) -> ProbeResult:
        started = time.monotonic()
        request = _request(self._netloc, path, api_key, keep_alive=True)
        try:
            async with asyncio.timeout(timeout_s):
                answer = await self._exchange(request)
        except TimeoutError:
            self.close()
            return ProbeResult(False, None, f"no answer within {timeout_s:g} s", time.monotonic() - started)
        except OSError as exc:
            self.close()
            return ProbeResult(False, None, f"connection failed: {exc.strerror or exc.__class__.__name__}",
                               time.monotonic() - started)
        except _ClosedEarly as exc:
            self.close()
            if isinstance(exc.exc, OSError):
                reason = exc.exc.strerror or exc.exc.__class__.__name__
                return ProbeResult(False, None, f"connection failed: {reason}", time.monotonic() - started)
            return ProbeResult(False, None, "not an HTTP answer", time.monotonic() - started)
        except _BadAnswer:
            self.close()
            return ProbeResult(False, None, "not an HTTP answer", time.monotonic() - started)
        except Exception as exc:  # a bug, not the server's answer: a failed probe, never a dead prober
            self.close()
            logger.exception("probe of %s:%s failed unexpectedly", self._host, self._port)
            return ProbeResult(False, None, f"probe error: {exc!r}", time.monotonic() - started)
        except BaseException:  # cancelled mid-exchange: the answer may still come, so never reuse
            self.close()
            raise
        if not answer.reusable:
            self.close()
        return _interpret(answer.status, answer.body, time.monotonic() - started)

    async def _exchange(self, request: bytes) -> _Answer:
        proto = self._proto
        if proto is not None and not proto.idle_clean:
            self.close()
            proto = None
        if proto is not None:
            try:
                return await proto.exchange(request)
            except _ClosedEarly:  # the server had dropped the idle connection: one fresh try
                self.close()
        proto = await self._connect()
        return await proto.exchange(request)

    async def _connect(self) -> _KeepAliveProtocol:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(_KeepAliveProtocol, self._host, self._port)
        self._proto = proto
        self.connects += 1
        return proto
