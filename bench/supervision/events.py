"""Follow the daemon's event stream in a thread and stamp each transition on arrival.

Each received event keeps two clocks: `seen` (this process's `time.monotonic()` when the line
arrived, i.e. what a client observes) and `event.at` (the daemon's wall clock when it recorded
the transition). Waiting is on a condition variable fed by the stream: no polling of the daemon.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from llama_orchestrator.daemon.client import DaemonClient
from llama_orchestrator.daemon.protocol import EventOut


@dataclass(frozen=True)
class Seen:
    seen: float  # time.monotonic() at arrival
    event: EventOut


class EventRecorder:
    def __init__(self, client: DaemonClient) -> None:
        self._events: list[Seen] = []
        self._cond = threading.Condition()
        self._stream = client.events(after_id=-1, follow=True)  # request sent now: nothing missed
        self._thread = threading.Thread(target=self._read, name="bench-events", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._stream:
                with self._cond:
                    self._events.append(Seen(time.monotonic(), event))
                    self._cond.notify_all()
        except OSError:
            return

    def mark(self) -> int:
        """An index: later waits only consider events that arrive after this point."""
        with self._cond:
            return len(self._events)

    def wait_for(self, predicate: Callable[[EventOut], bool], after: int, timeout_s: float) -> tuple[Seen, int]:
        """The first event at index >= `after` matching `predicate`, and the index after it."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            index = after
            while True:
                while index < len(self._events):
                    item = self._events[index]
                    index += 1
                    if predicate(item.event):
                        return item, index
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no matching event within {timeout_s} s")
                self._cond.wait(remaining)


def to_state(name: str, state: str, from_state: str | None = None) -> Callable[[EventOut], bool]:
    def match(event: EventOut) -> bool:
        return event.instance == name and event.to_state == state and (
            from_state is None or event.from_state == from_state)
    return match


def leaving(name: str, state: str) -> Callable[[EventOut], bool]:
    def match(event: EventOut) -> bool:
        return event.instance == name and event.from_state == state
    return match
