"""Choosing a port for a new instance: the lowest one that no config uses and nothing listens on."""

from __future__ import annotations

from collections.abc import Callable, Iterable

DEFAULT_FIRST_PORT = 8001
DEFAULT_LAST_PORT = 8999


def choose_port(
    taken: Iterable[int],
    is_free: Callable[[int], bool],
    first: int = DEFAULT_FIRST_PORT,
    last: int = DEFAULT_LAST_PORT,
) -> int | None:
    """Return the lowest port in [first, last] not in `taken` for which `is_free` says yes."""
    used = set(taken)
    for port in range(first, last + 1):
        if port not in used and is_free(port):
            return port
    return None
