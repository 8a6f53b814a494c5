"""A log follower of a quiet log (a stopped instance: nothing to write) still ends when its client
closes the stream, and does not hold up the daemon's stop while a client keeps it open.

The dashboard opens and closes one such stream per selected instance; before this, each one it
closed lived on in the daemon until the daemon stopped, and then held the stop for aiohttp's
shutdown timeout (a minute). The deadlines below are generous and far below that minute.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from tests.support.orch import Home, wait_gone
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


def test_quiet_log_followers_end_with_their_client_and_never_hold_up_the_daemons_stop(
        home: Home, tiny_model: Path) -> None:
    home.write_instance("quiet", model=tiny_model, port=free_port(), binary=home.fake_binary())
    pid = home.start_daemon()
    client = home.client()
    for _ in range(3):  # the dashboard scrolling over a stopped instance
        client.logs("quiet", 200, follow=True).close()
    kept = client.logs("quiet", 200, follow=True)  # and one still open when the daemon stops
    threading.Thread(target=lambda: list(kept), daemon=True).start()
    home.ok("daemon", "stop", timeout_s=30)
    wait_gone(pid, 15.0)
    kept.close()
