"""The gateway's port held by another program when the daemon starts: the daemon runs on
without it, says who holds the port and what to do, and tries again at the next `up`."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from tests.support.orch import Home
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration]


def test_a_held_gateway_port_names_its_holder_and_the_next_up_listens_once_it_is_free(tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    home = Home(tmp_path / "home", tmp_path / "scratch")
    home.paths.orchestrator_file.write_text(json.dumps({"gateway": {"port": port}}))
    try:
        home.start_daemon()
        wait_until(lambda: home.client().status().gateway.error, 30, 0.05, "the gateway's start tried")
        error = home.client().status().gateway.error or ""
        assert f"127.0.0.1:{port}: the port is already in use (held by pid {os.getpid()} " in error, error
        assert "choose another gateway.port" in error and "`llama-orch up` tries again" in error, error
        assert home.client().status().gateway.address is None

        holder.close()
        home.ok("up")
        gateway = home.client().status().gateway
        assert (gateway.address, gateway.error) == (f"http://127.0.0.1:{port}", None)
    finally:
        holder.close()
        home.close()
