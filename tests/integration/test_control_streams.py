"""The control API's streams: the newest N events, and closing a blocked stream from another thread."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from tests.support.orch import Home
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def test_tail_returns_the_newest_events_and_close_ends_a_blocked_follow(home: Home, tiny_model: Path) -> None:
    home.write_instance("a", model=tiny_model, port=free_port(), binary=home.fake_binary())
    home.start_daemon()
    for _ in range(2):
        home.ok("start", "a")
        home.ok("stop", "a")
    client = home.client()
    everything = list(client.events("a"))
    newest = list(client.events("a", tail=3))
    assert [e.id for e in newest] == [e.id for e in everything[-3:]]
    assert len(home.ok("events", "a", "-n", "2").out.strip().splitlines()) == 2

    stream = client.events(after_id=-1, follow=True)  # nothing will happen: the read blocks
    ended = threading.Event()

    def read_all() -> None:
        for _ in stream:
            pass
        ended.set()

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()
    assert not ended.is_set()
    stream.close()  # from this thread, while the reader is blocked in readline()
    wait_until(ended.is_set, 5.0, message="a closed stream ends its blocked reader")
