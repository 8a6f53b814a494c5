"""A streaming request held while its model loads (or waits for room or a slot), kept alive with
SSE comments.

With `gateway.hold_keepalive_s` set, a streamed request (`"stream": true`) that has waited that
long for a replica gets its answer started at once (200, `text/event-stream`) and an SSE comment
saying what it waits for (`: loading model 'x' (12 s)`, `: waiting for room to load 'x' …`)
every interval: clients with short read timeouts keep waiting,
and SSE clients (the OpenAI SDKs among them) ignore comments. The price is that a start that
then fails can no longer be a 503: it becomes an `error` event that ends the stream, which the
OpenAI SDKs raise as an APIError. Requests answered within the first interval are untouched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from llama_orchestrator.core.routing import Upstream
from llama_orchestrator.gateway.errors import SOURCE_HEADER, sse_error_event


class ClientGone(Exception):
    """The client closed the connection while its request was held."""


class HeldStream:
    def __init__(self, request: web.BaseRequest, model: str, interval_s: float, release: Callable[[str], None],
                 holds: Callable[[str], str]) -> None:
        self.request = request
        self.model = model
        self.holds = holds  # what the request waits for, in words (Traffic.what_holds)
        self.interval_s = interval_s
        self.release = release  # gives back a replica acquired too late to be used
        self.response: web.StreamResponse | None = None  # set once the answer has started
        self._since = time.monotonic()

    async def wait(self, acquiring: Awaitable[Upstream]) -> Upstream:
        """The replica `acquiring` yields, sending keep-alive comments while it takes long."""
        task = asyncio.ensure_future(acquiring)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.interval_s)
                if done:
                    return task.result()
                await self._keepalive()
        except BaseException:
            if task.done() and not task.cancelled() and task.exception() is None:
                self.release(task.result().name)  # acquired just as we gave up: counted in flight
            task.cancel()
            raise

    async def fail(self, message: str, code: str | None) -> web.StreamResponse:
        """End the started stream with an error event (the status line already said 200)."""
        assert self.response is not None
        try:
            await self.response.write(sse_error_event(message, "unavailable_error", code))
            await self.response.write_eof()
        except ConnectionError:
            pass
        return self.response

    async def _keepalive(self) -> None:
        waited = time.monotonic() - self._since
        try:
            if self.response is None:
                response = web.StreamResponse(status=200, headers={
                    "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                    "X-Accel-Buffering": "no", SOURCE_HEADER: "gateway",
                })
                await response.prepare(self.request)
                self.response = response
            await self.response.write(f": {self.holds(self.model)} ({waited:.0f} s)\n\n".encode())
        except ConnectionError as exc:
            raise ClientGone(str(exc)) from exc
