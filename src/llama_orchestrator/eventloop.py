"""The event loop the daemon (and with it the gateway) runs on: uvloop where it exists, else asyncio's.

uvloop's loop is libuv under Cython: the gateway relays more streams per second on it and each
health probe costs less CPU (bench.gateway compares `gateway` with `gw-asyncio` side by side).
Windows keeps asyncio's own Proactor loop: uvloop does not run there. `LLAMA_ORCH_EVENT_LOOP=asyncio`
turns uvloop off, to compare or to rule it out in a bug report. L0: stdlib (+ uvloop, lazily).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")
ENV_EVENT_LOOP = "LLAMA_ORCH_EVENT_LOOP"


def loop_factory(environ: Mapping[str, str] | None = None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's `new_event_loop` when it can be used, else None (asyncio's default loop)."""
    env = os.environ if environ is None else environ
    if sys.platform == "win32" or env.get(ENV_EVENT_LOOP, "").strip().lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """What a log line or a status should call `loop`: "uvloop" or "asyncio"."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the loop `loop_factory` picks."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
