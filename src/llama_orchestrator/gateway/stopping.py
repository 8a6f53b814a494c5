"""The gateway stopping, as the requests that wait in it see it (gateway.traffic's waits).

A request waits for a slot, a load or room for minutes at most; when the gateway stops, every
such wait ends at once in 503 `shutting_down`, so that the request is answered before its
connection closes (the daemon's stop does not wait for the loads).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from llama_orchestrator.gateway.errors import shutting_down


class Stopping:
    def __init__(self) -> None:
        self.closed = False
        self._done: asyncio.Future[None] | None = None  # done once closed (what a wait races)

    def close(self) -> None:
        self.closed = True
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def check(self) -> None:
        """503 shutting_down once closed."""
        if self.closed:
            raise shutting_down()

    async def unless_closed(self, waiting: Awaitable[object]) -> None:
        """Await `waiting`, unless the gateway stops first: then 503 at once (a `waiting` task is
        cancelled; shield one that others wait for too)."""
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
            if self.closed:
                self._done.set_result(None)
        task = asyncio.ensure_future(waiting)
        try:
            await asyncio.wait((task, self._done), return_when=asyncio.FIRST_COMPLETED)
        finally:
            task.cancel()  # (nothing once done)
        if self._done.done():
            if task.done() and not task.cancelled():
                task.exception()  # seen: its outcome no longer matters
            raise shutting_down()
        await task
