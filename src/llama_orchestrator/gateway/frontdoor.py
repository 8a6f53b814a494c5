"""The gateway's listening protocol: plain inference requests on a fast lane, the rest to aiohttp.

Per proxied stream, aiohttp's server (its request and response objects, a task step per event
and the keep-alive bookkeeping) cost more CPU than everything else the gateway does. So each
connection starts with a `FrontDoor`. A request that is plain (gateway.http1) with a valid key
and body (the `Lane.route` callback) is forwarded by an `Exchange` (gateway.exchange), driven
by the upstream connection's callbacks: no task at all when a replica is free at once, one
task only to wait in the queue or for a start. At the first request that is anything else -
another route, a bad key or body, a held stream, a malformed request - the connection is
handed to aiohttp's protocol with the bytes received so far, and stays with aiohttp;
`Gateway._dispatch` answers that request exactly as if aiohttp had had the connection from
the start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

from llama_orchestrator.core.routing import Upstream
from llama_orchestrator.core.traffic_health import Evidence
from llama_orchestrator.gateway.exchange import Exchange
from llama_orchestrator.gateway.http1 import MAX_BODY, MAX_HEAD, NotPlain, PlainRequest, plain_request
from llama_orchestrator.gateway.metrics import GatewayMetrics
from llama_orchestrator.gateway.pool import UpstreamPool
from llama_orchestrator.gateway.resumable import ConversationOwners
from llama_orchestrator.gateway.upstream import Response, Timeouts

IDLE_CLOSE_S = 75.0  # a connection silent this long between requests is closed (aiohttp's keep-alive timeout)
SWEEP_EVERY_S = 15.0


@dataclass(eq=False)
class Lane:
    """What the fast lane gets from the gateway."""

    paths: frozenset[str]
    # a plain request's replica (counted in flight; None: `acquire` waits for one) and model;
    # None: aiohttp's turn (Gateway._route_plain)
    route: Callable[[PlainRequest], tuple[Upstream | None, str] | None]
    acquire: Callable[[str], Awaitable[Upstream]]  # a replica of the model, after a queue or a start
    finish: Callable[[str, Evidence], None]  # the request sent to that replica is over, and how (Gateway._end_forward)
    pool: Callable[[], UpstreamPool | None]
    closing: Callable[[], bool]
    metrics: GatewayMetrics
    live: set[Response]  # upstream responses being relayed (the gateway cuts them when it stops)
    timeouts: Timeouts
    slow: Callable[[], asyncio.Protocol]  # aiohttp's protocol for one connection (web.Server())
    conversations: ConversationOwners = field(default_factory=ConversationOwners)  # named ones' instances
    doors: set[FrontDoor] = field(default_factory=set)
    reading: set[Exchange] = field(default_factory=set)  # sent upstream and not over: the read timeout's watch
    answered: int = 0  # requests the fast lane answered
    handed_off: int = 0  # connections it gave to aiohttp
    # the running loop, looked up once: on Python 3.11 each asyncio.get_running_loop() is a getpid()
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    _sweeper: asyncio.TimerHandle | None = None
    _read_tick: asyncio.TimerHandle | None = None

    def close_idle(self, idle_for_s: float = 0.0) -> None:
        """Close every connection that has sent nothing for `idle_for_s` outside a request in progress
        (waiting for its next request, or stalled in the middle of one)."""
        now = self.loop.time()
        for door in list(self.doors):
            if door.exchange is None and now - door.idle_since >= idle_for_s:
                door.close()

    def watch(self, door: FrontDoor) -> None:
        self.doors.add(door)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(SWEEP_EVERY_S, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        self.close_idle(IDLE_CLOSE_S)
        if self.doors:
            self._sweeper = self.loop.call_later(SWEEP_EVERY_S, self._sweep)

    def watch_reads(self, exchange: Exchange) -> None:
        """Keep the read timeout for `exchange` until it is over (it leaves `reading` then). One
        tick checks every exchange, a tenth of the timeout apart (`_tick_s`), while any is in
        flight: a timer of each request's own cost 4 % of its Python work (uvloop's call_later and
        cancel), and a timeout may fire up to a tick late."""
        self.reading.add(exchange)
        if self._read_tick is None and self.timeouts.read is not None:
            self._read_tick = self.loop.call_later(_tick_s(self.timeouts.read), self._check_reads)

    def _check_reads(self) -> None:
        self._read_tick = None
        timeout = self.timeouts.read
        if timeout is None:
            return
        for exchange in list(self.reading):
            exchange.check_idle(timeout)
        if self.reading:
            self._read_tick = self.loop.call_later(_tick_s(timeout), self._check_reads)

    def close(self) -> None:
        """Close every connection still at the front door (the gateway is stopping), once a request
        still waiting for a replica has been answered (503: its connection closes right after)."""
        for timer in (self._sweeper, self._read_tick):
            if timer is not None:
                timer.cancel()
        self._sweeper = self._read_tick = None
        for door in list(self.doors):
            if door.exchange is not None:
                door.exchange.stop()
            door.close()


def _tick_s(read_timeout: float) -> float:
    """How often the read timeouts are checked: a tenth of the timeout, between 10 ms and 1 s."""
    return max(0.01, min(1.0, read_timeout / 10))


class FrontDoor(asyncio.Protocol):
    """One client connection, until (if ever) it is handed to aiohttp."""

    def __init__(self, lane: Lane) -> None:
        self.lane = lane
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None
        self.idle_since = 0.0  # loop time of the last byte received or answer sent
        self._buf = bytearray()
        self._paused = False  # reading paused: a pipelined request waits behind the exchange

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.idle_since = self.lane.loop.time()
        self.lane.watch(self)

    def data_received(self, data: bytes) -> None:
        self.idle_since = self.lane.loop.time()
        self._buf += data
        if self.exchange is None:
            self._serve()
        elif len(self._buf) > MAX_HEAD + MAX_BODY and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lane.doors.discard(self)
        self.transport = None
        if self.exchange is not None:
            self.exchange.client_gone()

    def resume_writing(self) -> None:  # (pausing: the relay watches the write buffer itself)
        if self.exchange is not None:
            self.exchange.resume()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def done(self) -> None:
        """The exchange is over: serve the next request, if one came."""
        self.exchange = None
        if self.transport is None:
            return
        self.idle_since = self.lane.loop.time()
        if self.lane.closing():
            self.transport.close()
            return
        if self._paused:
            self._paused = False
            self.transport.resume_reading()
        if self._buf:
            self._serve()

    def _serve(self) -> None:
        try:
            req = plain_request(self._buf, self.lane.paths)
        except NotPlain:
            self.hand_off()
            return
        if req is None:
            return
        del self._buf[:len(req.raw)]
        routed = None if self.lane.closing() else self.lane.route(req)
        if routed is None:
            self.hand_off(req.raw)
            return
        upstream, model = routed
        self.exchange = Exchange(self, req, upstream, model)
        self.exchange.begin()

    def hand_off(self, prefix: bytes = b"") -> None:
        """Give the connection to aiohttp, with the bytes not yet answered (`prefix` first)."""
        transport = self.transport
        self.lane.doors.discard(self)
        if transport is None or transport.is_closing():
            return
        self.lane.handed_off += 1
        data = prefix + bytes(self._buf)
        self._buf = bytearray()
        self.transport = None
        slow = self.lane.slow()
        transport.set_protocol(slow)
        slow.connection_made(transport)
        if self._paused:
            transport.resume_reading()
        if data:
            slow.data_received(data)
