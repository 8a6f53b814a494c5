"""Port checks against real listening sockets held by helper processes (engine.ports)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from llama_orchestrator.engine import PortHolder, is_port_free, port_holder

pytestmark = pytest.mark.integration

CHILD = Path(__file__).parent / "engine_children" / "child.py"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], object], timeout_s: float, message: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {message}")
        time.sleep(0.02)


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Callable[[str, int], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(host: str, port: int) -> subprocess.Popen[bytes]:
        log = tmp_path / f"listen-{len(started)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, str(CHILD), "listen", host, str(port)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )
        started.append(proc)
        wait_until(lambda: "listening" in log.read_text() or proc.poll() is not None, 10, "listening")
        assert proc.poll() is None, log.read_text()
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait(timeout=10)


def test_port_held_by_helper_process_reports_its_pid(listener: Callable[[str, int], subprocess.Popen[bytes]]) -> None:
    port = free_port()
    helper = listener("127.0.0.1", port)
    holder = port_holder("127.0.0.1", port)
    assert holder is not None
    assert holder.pid == helper.pid
    assert holder.name is not None and "python" in holder.name.lower()
    assert not is_port_free("127.0.0.1", port)
    assert helper.poll() is None  # reported, never touched


def test_wildcard_listener_blocks_the_loopback_port(listener: Callable[[str, int], subprocess.Popen[bytes]]) -> None:
    port = free_port("0.0.0.0")
    helper = listener("0.0.0.0", port)
    holder = port_holder("127.0.0.1", port)
    assert holder == PortHolder(pid=helper.pid, name=holder.name if holder else None)
    assert not is_port_free("0.0.0.0", port)


def test_free_port_is_free() -> None:
    port = free_port()
    assert port_holder("127.0.0.1", port) is None
    assert is_port_free("127.0.0.1", port)


def test_time_wait_leftovers_do_not_make_a_port_taken() -> None:
    # A server we just stopped leaves its accepted connections in TIME_WAIT; llama-server binds
    # with SO_REUSEADDR and succeeds, so our check must not call the port taken.
    port = free_port()
    server = socket.create_server(("127.0.0.1", port))
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    conn.close()  # the server side closes first: its end goes to TIME_WAIT
    client.recv(1)
    client.close()
    server.close()
    assert is_port_free("127.0.0.1", port)
