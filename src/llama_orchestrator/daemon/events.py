"""Fan-out of state transitions to live subscribers (`events -f`, `up` progress, the dashboard).

Each subscriber gets its own bounded queue; one that stops reading is dropped rather than
allowed to grow the daemon's memory. History comes from the store; subscribe first, then read
history, and skip ids already seen, so nothing falls in the gap.
"""

from __future__ import annotations

import asyncio
import contextlib

from llama_orchestrator.store import EventRecord

SUBSCRIBER_QUEUE = 1000


class EventHub:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[EventRecord | None]] = set()

    def publish(self, event: EventRecord) -> None:
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                # A subscriber this far behind is dropped; its stream ends where it stopped reading.
                self._subscribers.discard(queue)

    def subscribe(self) -> asyncio.Queue[EventRecord | None]:
        queue: asyncio.Queue[EventRecord | None] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[EventRecord | None]) -> None:
        self._subscribers.discard(queue)

    def close(self) -> None:
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        self._subscribers.clear()
