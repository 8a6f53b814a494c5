"""The daemon's event loop: uvloop on Linux and macOS when installed, asyncio's when asked or on Windows."""

from __future__ import annotations

import asyncio
import sys

import pytest

from llama_orchestrator import eventloop


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop does not exist on Windows")
def test_uvloop_by_default_and_asyncio_on_request() -> None:
    import uvloop  # a dependency on this platform: its absence is a packaging bug

    assert eventloop.loop_factory({}) is uvloop.new_event_loop
    assert eventloop.loop_factory({eventloop.ENV_EVENT_LOOP: "asyncio"}) is None
    assert eventloop.loop_factory({eventloop.ENV_EVENT_LOOP: " AsyncIO "}) is None


def test_run_runs_on_the_chosen_loop_and_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    async def which() -> str:
        return eventloop.loop_name(asyncio.get_running_loop())

    expected = "asyncio" if sys.platform == "win32" else "uvloop"
    assert eventloop.run(which()) == expected
    monkeypatch.setenv(eventloop.ENV_EVENT_LOOP, "asyncio")
    assert eventloop.run(which()) == "asyncio"
