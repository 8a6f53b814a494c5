"""Following the daemon's streams (events, log lines) without blocking the UI or leaking readers.

`DaemonClient.events(follow=True)` and `.logs(follow=True)` return a `Stream`: a blocking iterator
over one long HTTP response whose `close()` may be called from any thread and ends a blocked read at
once. Each `Feed` reads one stream on its own daemon thread and hands every item to a callback
(which posts a Textual message: `post_message` is thread-safe). `Feed.stop()` closes the stream, so
the reader returns even when the stream is idle, and the daemon sees the connection go.

Why daemon threads and not Textual thread workers: workers run in asyncio's default executor, which
is joined when the app exits; a reader blocked on an idle stream would hang the exit. A daemon
thread cannot, and `stop()` still ends it promptly in the normal case.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from llama_orchestrator.errors import OrchestratorError
from llama_orchestrator.tui.source import ItemStream

T = TypeVar("T")

#: What ends a stream abnormally: the daemon went away, or answered something we cannot read.
STREAM_ERRORS = (OSError, ValueError, http.client.HTTPException, OrchestratorError)


class Feed(Generic[T]):
    """One stream read on a daemon thread; `deliver(item)` runs on that thread for each item.

    `ended(error)` runs on that thread when the stream ends by itself (error is None at a clean
    end of stream), never after `stop()`.
    """

    def __init__(
        self,
        name: str,
        open_stream: Callable[[], ItemStream[T]],
        deliver: Callable[[T], object],
        ended: Callable[[BaseException | None], object] | None = None,
    ) -> None:
        self.name = name
        self._open = open_stream
        self._deliver = deliver
        self._ended = ended
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._stream: ItemStream[T] | None = None
        self._thread = threading.Thread(target=self._run, name=f"feed-{name}", daemon=True)

    def start(self) -> Feed[T]:
        self._thread.start()
        return self

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def stop(self) -> None:
        """Stop delivering and unblock the reader; safe to call from any thread, more than once."""
        self._stopped.set()
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    def join(self, timeout_s: float) -> bool:
        """Wait for the reader thread to end; True when it did."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            stream = self._open()
        except STREAM_ERRORS as exc:
            error = exc
        else:
            with self._lock:
                if self._stopped.is_set():
                    stream.close()
                    return
                self._stream = stream
            try:
                for item in stream:
                    if self._stopped.is_set():
                        return
                    self._deliver(item)
            except STREAM_ERRORS as exc:
                error = exc
            finally:
                stream.close()
        if not self._stopped.is_set() and self._ended is not None:
            self._ended(error)


class Poller(Generic[T]):
    """Calls `fetch()` on a daemon thread every `interval_s`, or sooner after `poke()`.

    Each result goes to `deliver`; the first error goes to `failed` and ends the poller. One
    request per round, whatever the number of instances.
    """

    def __init__(
        self,
        name: str,
        fetch: Callable[[], T],
        deliver: Callable[[T], object],
        failed: Callable[[BaseException], object],
        interval_s: float,
    ) -> None:
        self._fetch = fetch
        self._deliver = deliver
        self._failed = failed
        self.interval_s = interval_s
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"poll-{name}", daemon=True)

    def start(self) -> Poller[T]:
        self._thread.start()
        return self

    def poke(self) -> None:
        """Fetch now instead of at the next tick (several pokes in a row make one fetch)."""
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    def join(self, timeout_s: float) -> bool:
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                result = self._fetch()
            except STREAM_ERRORS as exc:
                if not self._stopped.is_set():
                    self._failed(exc)
                return
            if self._stopped.is_set():
                return
            self._deliver(result)
            self._wake.wait(self.interval_s)
            self._wake.clear()
