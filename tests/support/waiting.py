"""Poll a predicate until it is truthy or a deadline passes: the only way tests synchronise.

Tests never sleep a fixed time to wait for something; they wait on an observable (an HTTP
answer, a log line, a process exit) with a deadline, and fail with a message saying what
did not happen.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout_s: float,
    interval_s: float = 0.02,
    message: str = "condition not met",
) -> T:
    """Call ``predicate`` until it returns a truthy value and return that value.

    Raises ``AssertionError`` naming ``message`` (and the last value) on timeout.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s}s: {message} (last value: {value!r})")
        time.sleep(interval_s)


async def async_wait_until(
    predicate: Callable[[], T | Awaitable[T]],
    timeout_s: float,
    interval_s: float = 0.02,
    message: str = "condition not met",
) -> T:
    """Async twin of :func:`wait_until`; ``predicate`` may be sync or return an awaitable."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s}s: {message} (last value: {value!r})")
        await asyncio.sleep(interval_s)
