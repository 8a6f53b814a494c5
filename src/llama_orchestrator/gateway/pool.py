"""The upstream connections of the gateway: one keep-alive pool, per (host, port), over
`gateway.upstream.Response` connections.

Pool: idle connections are kept per (host, port), reused newest first, and closed after
`keepalive_s` idle (keep it under llama-server's 5 s, which closes them without telling us). A
request written onto a pooled socket that the server had already closed gets no answer byte; it
never reached the server, so `request` sends it again (up to STALE_RETRIES times), always on a
new connection. A new connection dropped unanswered means a saturated server: the next attempt
waits FRESH_BACKOFF_S, doubling. A refused or failed connect raises `ConnectFailed` (not retried).
llama-server closes every socket right after a streamed answer (it says keep-alive, then
closes): once the pool sees that (`closes_after_stream`), it closes such sockets itself instead
of pooling them (at c=32, 18 % of streams had first been written into a dying socket).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine

from llama_orchestrator.gateway.upstream import (
    ConnectFailed,
    ConnectTimeout,
    Response,
    Timeouts,
    UpstreamClosed,
)

STALE_RETRIES = 3
FRESH_BACKOFF_S = 0.01  # before sending again after a new connection closed unanswered (doubles)
SWEEP_EVERY_S = 1.0


class UpstreamPool:
    def __init__(self, keepalive_s: float) -> None:
        self.keepalive_s = keepalive_s
        self.closed = False
        # servers seen closing the connection after a streamed answer although it said keep-alive
        # (llama-server does, every time): such connections are closed instead of pooled, so no
        # request is written into a socket that is going away (18 % of streams at c=32 were)
        self.closes_after_stream: set[tuple[str, int]] = set()
        self._idle: dict[tuple[str, int], list[Response]] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    async def request(
        self, method: str, host: str, port: int, target: str, headers: dict[str, str], body: bytes | None,
        timeouts: Timeouts, wire_sse: bool = False, live: set[Response] | None = None,
    ) -> Response:
        """Send one request and return once the response head has arrived (`wire_sse`: see `Response.wire`).
        The response is in `live` from the request sent (the caller discards it once done with it),
        so that the gateway's stop can cut it before its head too."""
        key = (host, port)
        raw = request_bytes(method, host, port, target, headers, body)
        for attempt in range(STALE_RETRIES + 1):
            conn = await self._acquire(key, timeouts.connect, pooled=attempt == 0)
            fresh = conn.idle_since == 0.0
            after_stream = self.send(conn, method, raw, timeouts, wire_sse)
            if live is not None:
                live.add(conn)
            try:
                await conn._head()
                self.answered(conn, after_stream)
                return conn
            except UpstreamClosed:
                _forget(conn, live)
                self.unanswered(conn, after_stream)
                if conn.received or attempt == STALE_RETRIES:
                    raise
                if fresh:  # a new connection dropped unanswered: the server is saturated; back off
                    await asyncio.sleep(FRESH_BACKOFF_S * 2**attempt)
            except BaseException:
                _forget(conn, live)
                raise
        raise AssertionError("unreachable")

    def send(self, conn: Response, method: str, raw: bytes, timeouts: Timeouts, wire_sse: bool) -> bool:
        """Write a request (`request_bytes`) on `conn`; True if it was pooled after a stream."""
        after_stream, conn.after_stream = conn.after_stream, False
        conn._send(method, raw, timeouts, wire_sse)
        return after_stream

    def answered(self, conn: Response, after_stream: bool) -> None:
        """The response head came on `conn` (what `send` returned)."""
        if after_stream:
            self.closes_after_stream.discard(conn._key)  # it kept one open after all

    def unanswered(self, conn: Response, after_stream: bool) -> None:
        """`conn` closed before the response head."""
        if after_stream and not conn.received:
            self.closes_after_stream.add(conn._key)

    async def _acquire(self, key: tuple[str, int], connect_timeout: float, pooled: bool) -> Response:
        conn = self.idle_connection(key) if pooled else None
        return conn if conn is not None else await self.connect(key, connect_timeout)

    def idle_connection(self, key: tuple[str, int]) -> Response | None:
        """A pooled connection to `key` that is still fresh, if there is one."""
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            conn.in_pool = False
            if conn.transport is not None and now - conn.idle_since < self.keepalive_s:
                return conn
            conn.discard()
        return None

    def dial(self, key: tuple[str, int]) -> asyncio.Task[tuple[asyncio.BaseTransport, Response]]:
        """A new connection on its way, for a caller that keeps its own time (gateway.exchange);
        an OSError (refused, unreachable) is the task's exception."""
        return asyncio.get_running_loop().create_task(self._open(key))

    def _open(self, key: tuple[str, int]) -> Coroutine[object, object, tuple[asyncio.BaseTransport, Response]]:
        loop = asyncio.get_running_loop()
        return loop.create_connection(lambda: Response(self, key), key[0], key[1])

    async def connect(self, key: tuple[str, int], connect_timeout: float) -> Response:
        """A new connection (ConnectFailed, ConnectTimeout)."""
        if self.closed:
            raise ConnectFailed("the upstream pool is closed")
        try:
            async with asyncio.timeout(connect_timeout):
                _, conn = await self._open(key)
        except TimeoutError as exc:
            raise ConnectTimeout(f"no connection to {key[0]}:{key[1]} within {connect_timeout} s") from exc
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {key[0]}:{key[1]}: {exc.strerror or exc}") from exc
        return conn

    def release(self, conn: Response) -> None:
        conn.idle_since = time.monotonic()
        conn.in_pool = True
        self._idle.setdefault(conn._key, []).append(conn)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(SWEEP_EVERY_S, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        cutoff = time.monotonic() - self.keepalive_s
        for key, idle in list(self._idle.items()):
            keep = [c for c in idle if c.transport is not None and c.idle_since > cutoff]
            for c in idle:
                if c.transport is None or c.idle_since <= cutoff:
                    c.discard()
            if keep:
                self._idle[key] = keep
            else:
                del self._idle[key]
        if self._idle:
            self._sweeper = asyncio.get_running_loop().call_later(SWEEP_EVERY_S, self._sweep)

    async def close(self) -> None:
        """Close every idle connection; responses in progress close when their reader closes them."""
        self.closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in self._idle.values():
            for c in idle:
                c.discard()
        self._idle.clear()


def _forget(conn: Response, live: set[Response] | None) -> None:
    if live is not None:
        live.discard(conn)
    conn.close()


def request_bytes(method: str, host: str, port: int, target: str, headers: dict[str, str], body: bytes | None) -> bytes:
    """One HTTP/1.1 request as it goes on the wire (ValueError for a header holding a line break)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {f'[{host}]' if ':' in host else host}:{port}"]
    for name, value in headers.items():
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name} holds a line break")
        lines.append(f"{name}: {value}")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
