"""One request on the front door's fast lane (gateway.frontdoor): from the replica chosen to the
last byte, driven by callbacks (the upstream connection's `notify`, the client's flow control and
loss, the lane's tick for the read timeout) instead of a task. With no replica free at once, one task
runs `Traffic.acquire` (the queue, an on-demand start, 429 and 503 as aiohttp's path has them).

The outcomes are those of `proxy.forward`, which serves aiohttp's requests:
- an SSE answer in chunked encoding is relayed in whole chunks (one per read, gateway.chunked),
  by the upstream connection itself (`Response.relay_to`), the head in the same send as the
  bytes in hand; another SSE answer is framed chunk by chunk (without flow control: llama-server
  always chunks); any other answer is read whole and returned with the upstream's status,
  content type and Retry-After, marked `X-Llama-Orch-Source: upstream`;
- the upstream did no work (the connection was refused, a new one dropped unanswered, it
  answered 503 while loading): the request goes to aiohttp after all (`FrontDoor.hand_off`),
  which sends it to another replica or answers as it always does;
- no answer within the read timeout: 504; the connection lost mid-answer: 503, both in the
  OpenAI error shape (`errors.to_response`);
- the upstream dies or stalls mid-stream, or the gateway stops: an SSE `error` event, then the
  end of the stream; the client leaves: the upstream socket is closed at once (the slot frees);
- the gateway stops before the answer's head (or before a replica took the request): 503
  `shutting_down`, then the connection closes.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from llama_orchestrator.core.routing import Upstream
from llama_orchestrator.core.traffic_health import Evidence, status_evidence
from llama_orchestrator.gateway.errors import (
    INSTANCE_HEADER,
    SOURCE_HEADER,
    shutting_down,
    sse_error_event,
    to_response,
)
from llama_orchestrator.gateway.http1 import PlainRequest, repeated_response_head, response_head
from llama_orchestrator.gateway.metrics import model_label
from llama_orchestrator.gateway.pool import UpstreamPool, request_bytes
from llama_orchestrator.gateway.proxy import (
    describe_cut,
    failed_answering,
    no_answer,
    unreachable,
    upstream_headers,
)
from llama_orchestrator.gateway.upstream import ConnectFailed, Response, address

if TYPE_CHECKING:
    from llama_orchestrator.gateway.frontdoor import FrontDoor

SSE = "text/event-stream"
LAST_CHUNK = b"0\r\n\r\n"


def chunk(data: bytes) -> bytes:
    """`data` as one chunk of a chunked body."""
    return b"%x\r\n%b\r\n" % (len(data), data)


class Exchange:
    def __init__(self, door: FrontDoor, req: PlainRequest, upstream: Upstream | None, model: str) -> None:
        self.door = door
        self.lane = door.lane
        self.req = req
        self.upstream = upstream  # None: not yet; `lane.acquire` waits for one (a queue, a start)
        self.instance = upstream.name if upstream else ""
        self.model = model
        self.started = time.perf_counter()
        self.phase = "wait"  # -> "connect" -> "head" -> "relay" | "copy" | "whole" -> "over"
        self.waiting: asyncio.Future[Upstream] | None = None
        self.up: Response | None = None
        self.key = ("", 0)
        self.raw = b""
        self.sent_at = 0.0
        self.pooled = False
        self.after_stream = False
        self.parts: list[bytes] = []  # a whole (non-SSE) answer as it comes
        self.timer: asyncio.TimerHandle | None = None  # the connect timeout (the lane's tick keeps the read timeout)
        self.dialing: asyncio.Task[tuple[asyncio.BaseTransport, Response]] | None = None
        self.timed_out = False
        self.evidence: Evidence = None  # what the request says of the replica's health (core.traffic_health)

    # --- sending ---------------------------------------------------------------------------------
    def begin(self) -> None:
        upstream = self.upstream
        if upstream is None:  # every replica is busy or the model is not up: wait as aiohttp's path would
            self.waiting = task = asyncio.ensure_future(self.lane.acquire(self.model))
            task.add_done_callback(self._acquired)
            return
        pool = self.lane.pool()
        self.lane.conversations.note(self.req.headers, upstream.name, self.model)
        try:
            host, port, prefix = address(upstream.base_url)
            headers = upstream_headers(self.req.headers, upstream)
            body = self.req.body if upstream.rewrite_body is None else upstream.rewrite_body(self.req.body, self.model)
            self.raw = request_bytes("POST", host, port, prefix + self.req.path, headers, body)
        except (ConnectFailed, ValueError):
            pool = None
        if pool is None:
            self._hand_off()
            return
        self.key = (host, port)
        conn = pool.idle_connection(self.key)
        if conn is None:
            self._connect(pool)
        else:
            self._send(pool, conn, pooled=True)

    def _acquired(self, task: asyncio.Future[Upstream]) -> None:
        self.waiting = None
        if task.cancelled():
            return
        exc = task.exception()
        if self.phase == "over":  # the client left meanwhile
            if exc is None:
                self.lane.finish(task.result().name, None)
            return
        if exc is not None:
            self._refuse(exc)  # 429, 503, 404 ... as aiohttp's path answers them
            return
        self.upstream = task.result()
        self.instance = self.upstream.name
        self.begin()

    def _connect(self, pool: UpstreamPool) -> None:
        self.phase = "connect"
        if self.timer is not None:
            self.timer.cancel()
        self.dialing = task = pool.dial(self.key)
        self.timer = self.lane.loop.call_later(self.lane.timeouts.connect, task.cancel)
        task.add_done_callback(self._connected)

    def _connected(self, task: asyncio.Future[tuple[asyncio.BaseTransport, Response]]) -> None:
        self.dialing = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        exc = None if task.cancelled() else task.exception()
        if self.phase == "over":  # the client left (or the gateway stopped) meanwhile
            if not task.cancelled() and exc is None:
                task.result()[1].discard()
            return
        pool = self.lane.pool()
        if task.cancelled():  # by the timer
            self._refuse(no_answer(self.instance))
        elif exc is not None or pool is None:
            if exc is None:
                task.result()[1].discard()  # the gateway is stopping
            self._hand_off()  # refused: aiohttp's path tries another replica, or says why not
        else:
            self._send(pool, task.result()[1], pooled=False)

    def _send(self, pool: UpstreamPool, conn: Response, pooled: bool) -> None:
        self.phase = "head"
        self.up = conn
        self.pooled = pooled
        conn.notify = self._on_upstream
        self.lane.live.add(conn)
        self.sent_at = time.perf_counter()
        self.after_stream = pool.send(conn, "POST", self.raw, self.lane.timeouts, wire_sse=True)
        self.lane.watch_reads(self)

    # --- the answer ----------------------------------------------------------------------------
    def _on_upstream(self) -> None:
        up = self.up
        if up is None:
            return
        phase = self.phase
        if phase == "relay":
            state = up.sink_state
            if state == "gone":
                self.client_gone()
            elif state == "drain":
                return
            elif up.failure is not None:
                self._cut()
            elif up.at_eof():
                self._over("upstream")
            return
        if phase == "copy":
            self._copy(up)
            return
        if phase == "head":
            if not up.head_done:
                if up.failure is not None:
                    self._lost_before_head(up)
                return
            self._head(up)
            return
        if phase == "whole":
            self._whole(up)

    def _head(self, up: Response) -> None:
        self.evidence = status_evidence(up.status)
        pool = self.lane.pool()
        if pool is not None:
            pool.answered(up, self.after_stream)
        if up.content_type != SSE:
            self.phase = "whole"
            self._whole(up)
            return
        transport = self.door.transport
        if transport is None:
            self.client_gone()
            return
        head = repeated_response_head(up.status, (
            ("Content-Type", up.headers.get("content-type", SSE)),
            ("Cache-Control", "no-cache"),
            ("X-Accel-Buffering", "no"),
            (SOURCE_HEADER, "upstream"),
            (INSTANCE_HEADER, self.instance),
            ("Transfer-Encoding", "chunked"),
        ))
        if up.wire:
            self.phase = "relay"
            up.relay_to(transport, head)
        else:
            self.phase = "copy"
            transport.write(head)
        self._on_upstream()  # the answer may be over already

    def _lost_before_head(self, up: Response) -> None:
        pool = self.lane.pool()
        if pool is not None:
            pool.unanswered(up, self.after_stream)
        self._drop_upstream()
        if self.lane.closing():  # cut by the gateway's stop
            self._refuse(shutting_down())
        elif up.received:
            self._refuse(unreachable(self.instance, up.failure))
        elif self.pooled and pool is not None:
            self._connect(pool)  # a pooled connection the server had closed: the request never left
        else:
            self._hand_off()  # a new connection dropped unanswered: aiohttp's path retries with backoff

    def _whole(self, up: Response) -> None:
        data = up.take()
        if data:
            self.parts.append(data)
        if up.failure is not None:
            self._drop_upstream()
            self._refuse(shutting_down() if self.lane.closing() else failed_answering(self.instance, "UpstreamClosed"))
            return
        if not up.at_eof():
            return
        if up.status == 503:  # loading: it did no work, so another replica may take the request
            self._hand_off()
            return
        body = b"".join(self.parts)
        if self.evidence:  # a failure: name llama-server's own message
            self.evidence = status_evidence(up.status, body)
        headers = [(SOURCE_HEADER, "upstream"), (INSTANCE_HEADER, self.instance)]
        for name, header in (("content-type", "Content-Type"), ("retry-after", "Retry-After")):
            if value := up.headers.get(name):
                headers.append((header, value))
        headers.append(("Content-Length", str(len(body))))
        self._write(response_head(up.status, headers) + body)
        self._over("upstream")

    def _copy(self, up: Response) -> None:
        """An SSE answer that is not chunked upstream: each read becomes one chunk."""
        data = up.take()
        if data:
            self._write(chunk(data))
            if up.first_relayed_at is None:
                up.first_relayed_at = time.perf_counter()
        if up.failure is not None:
            self._cut()
        elif up.at_eof():
            self._write(LAST_CHUNK)
            self._over("upstream")

    def resume(self) -> None:
        """The client's socket drained."""
        if self.phase == "relay" and self.up is not None:
            self.up.resume_relay()
            self._on_upstream()  # what happened upstream while the relay waited

    # --- endings -------------------------------------------------------------------------------
    def _cut(self) -> None:
        """The upstream ended the stream early (or stalled, or the gateway stops): say so in it."""
        if self.lane.closing():
            reason = "the gateway is shutting down"
        else:
            reason = self.evidence = describe_cut(self.instance, self.timed_out, "UpstreamClosed")
        self._write(chunk(sse_error_event(reason)) + LAST_CHUNK)
        self._over("stream_error")

    def stop(self) -> None:
        """The gateway stops before the request reached a replica (it waits for one, or connects):
        answer 503 now, before the connection closes. A request sent is ended by its cut."""
        if self.phase in ("wait", "connect"):
            self._refuse(shutting_down())

    def client_gone(self) -> None:
        """The client closed its connection: close the upstream's now, so the slot frees."""
        if self.phase != "over":
            self._over("upstream", drop=True)

    def _refuse(self, exc: BaseException) -> None:
        """Answer with the gateway's own error (nothing was written to the client yet); with a
        replica chosen, it is one that failed the request (refused, silent, cut)."""
        if self.upstream is not None and not self.lane.closing():  # (the gateway's stop is not the replica's doing)
            self.evidence = str(exc)
        answer = to_response(exc)
        body = answer.body if isinstance(answer.body, bytes) else b""
        self._write(response_head(answer.status, [*answer.headers.items(), ("Content-Length", str(len(body)))]) + body)
        self.lane.metrics.observe(model_label(self.model, exc), self.req.path, answer.status, "gateway",
                                  time.perf_counter() - self.started)
        self._end()

    def _over(self, source: str, drop: bool = False) -> None:
        up = self.up
        if up is not None and up.status:
            if source != "stream_error" and up.first_relayed_at is not None:
                self.lane.metrics.observe_ttfb(self.model, up.first_relayed_at - self.sent_at)
            elif self.phase == "whole":
                self.lane.metrics.observe_ttfb(self.model, time.perf_counter() - self.sent_at)
            self.lane.metrics.observe(self.model, self.req.path, up.status, source, time.perf_counter() - self.started)
        if drop:
            self._drop_upstream()
        self._end()

    def _end(self) -> None:
        if self.phase == "over":
            return
        up, self.up = self.up, None
        if up is not None:
            self.lane.live.discard(up)
            up.close()  # back to the pool if the answer was whole, else the socket closes
        self._release()
        self.lane.answered += 1
        self.door.done()

    def _hand_off(self) -> None:
        """Before any byte to the client: aiohttp's path takes the request from its bytes."""
        self.evidence = None  # that path tells what comes of it
        self._drop_upstream()
        self._release()
        self.door.exchange = None
        self.door.hand_off(self.req.raw)

    def _release(self) -> None:
        """Over: no timer or task left running, and the replica (if it got one) no longer counted."""
        self.phase = "over"
        self.lane.reading.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.dialing is not None:
            self.dialing.cancel()  # its callback sees "over" and returns
        if self.waiting is not None:
            self.waiting.cancel()  # likewise (an upstream it got meanwhile is released there)
        if self.upstream is not None:
            self.lane.finish(self.instance, self.evidence)

    def _drop_upstream(self) -> None:
        up, self.up = self.up, None
        if up is not None:
            self.lane.live.discard(up)
            up.discard()

    def _write(self, data: bytes) -> None:
        transport = self.door.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def check_idle(self, timeout: float) -> None:
        """The read timeout (the lane's tick): nothing from the upstream for `timeout` seconds ends the exchange."""
        up = self.up
        if self.phase == "over":
            return
        idle = up.idle_s if up is not None and up.sink_state != "drain" else 0.0  # not while the client is slow
        if idle < timeout:
            return
        self.timed_out = True
        if self.phase in ("relay", "copy") and up is not None:
            up.cut("read timeout")  # -> _on_upstream -> _cut
            return
        self._drop_upstream()
        self._refuse(no_answer(self.instance))
