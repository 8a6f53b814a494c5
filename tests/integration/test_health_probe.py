"""The health probes against real sockets: ready, loading, silent, refused, deep, and kept-alive reuse."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest
from tests.support.orch import Home
from tests.support.ports import free_port
from tests.support.procs import marked_env, running
from tests.support.waiting import async_wait_until, wait_until

from llama_orchestrator.core.traffic_health import canary_request
from llama_orchestrator.health.connection import ProbeConnection
from llama_orchestrator.health.probe import HealthProber

pytestmark = pytest.mark.integration


async def test_real_server_is_ready_and_slots_answer(llama_server_bin: Path, tiny_model: Path, tmp_path: Path) -> None:
    port = free_port()
    cmd = [str(llama_server_bin), "-m", str(tiny_model), "--host", "127.0.0.1", "--port", str(port), "-c", "256"]
    prober = HealthProber()
    try:
        with running(cmd, marked_env(), tmp_path / "server.log"):
            base = f"http://127.0.0.1:{port}"
            result = await async_wait_until(lambda: _ok(prober, base), 30.0, message="real server healthy")
            assert result
            slots = await prober.slots(base, 5.0)
            assert slots.ok and slots.status == 200
            completion = await prober.post(base, *canary_request(False, []), 10.0)  # the one-token canary
            assert completion.ok
    finally:
        await prober.close()


async def test_real_embedding_server_passes_the_canary_chosen_for_its_kind(
    llama_server_bin: Path, tiny_model: Path, tmp_path: Path
) -> None:
    # The canary after failing gateway requests (core.traffic_health) must be a request the server
    # serves: an embedding instance gets /embedding; a --reranking one /rerank, which a server started
    # without that flag refuses (checked here too, so the choice by flags is not guesswork).
    port = free_port()
    cmd = [str(llama_server_bin), "-m", str(tiny_model), "--host", "127.0.0.1", "--port", str(port), "-c", "256",
           "--embeddings"]
    prober = HealthProber()
    try:
        with running(cmd, marked_env(), tmp_path / "server.log"):
            base = f"http://127.0.0.1:{port}"
            assert await async_wait_until(lambda: _ok(prober, base), 30.0, message="real server healthy")
            path, body = canary_request(True, ["--embeddings"])
            assert path == "/embedding"
            result = await prober.post(base, path, body, 10.0)
            assert result.ok, result
            path, body = canary_request(False, ["--reranking"])
            refused = await prober.post(base, path, body, 10.0)
            assert refused.status == 501 and "--reranking" in refused.detail, refused
    finally:
        await prober.close()


async def _ok(prober: HealthProber, base: str) -> bool:
    return (await prober.health(base, 1.0)).ok


async def test_loading_fake_reports_loading(fake_server_cmd: list[str], tiny_model: Path, tmp_path: Path) -> None:
    port = free_port()
    cmd = [*fake_server_cmd, "-m", str(tiny_model), "--host", "127.0.0.1", "--port", str(port)]
    prober = HealthProber()
    with running(cmd, marked_env(FAKE_LOAD_SECONDS="30"), tmp_path / "fake.log"):

        async def loading() -> bool:
            result = await prober.health(f"http://127.0.0.1:{port}", 1.0)
            return result.loading and result.status == 503 and not result.ok

        assert await async_wait_until(loading, 15.0, message="fake answers 503 Loading model")


async def test_silent_socket_times_out_and_refused_port_fails() -> None:
    prober = HealthProber()
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts into the backlog, never answers: what a SIGSTOPped server looks like
        port = silent.getsockname()[1]
        result = await prober.health(f"http://127.0.0.1:{port}", 0.3)
        assert not result.ok and result.status is None and "no answer within 0.3 s" in result.detail
    refused = await prober.health(f"http://127.0.0.1:{free_port()}", 1.0)
    assert not refused.ok and "connection failed" in refused.detail


OK_ANSWER = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{"status":"ok"}'
LOADING_ANSWER = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 54\r\n\r\n"
                  b'{"error":{"code":503,"message":"Loading model","x":1}}')


class KeepAliveServer:
    """A llama-server-like HTTP/1.1 endpoint in the test's loop that counts the connections it accepts.

    mode "ok" answers every request and keeps the connection; "close-after" answers, then closes
    the connection as an idle timeout would; "drop-next" closes the connection on the next request
    without a byte of answer (the idle close racing a request) and goes back to "ok"; "silent"
    holds requests unanswered (a SIGSTOPped server) and answers them late when the mode changes.
    """

    def __init__(self) -> None:
        self.accepted = 0
        self.requests = 0
        self.mode = "ok"
        self.answer = OK_ANSWER
        self.held: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"GET /health HTTP/1.1\r\n") and b"Connection: keep-alive" in head
                self.requests += 1
                if self.mode == "silent":
                    self.held.append(writer)
                    continue
                if self.mode == "drop-next":
                    self.mode = "ok"
                    break
                writer.write(self.answer)
                await writer.drain()
                if self.mode == "close-after":
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def answer_held_late(self) -> None:
        for writer in self.held:
            if not writer.is_closing():
                writer.write(b"HTTP/1.1 500 Late\r\nContent-Length: 4\r\n\r\nlate")
        self.held.clear()


@pytest.fixture
async def keepalive_server() -> AsyncIterator[tuple[KeepAliveServer, str]]:
    fake = KeepAliveServer()
    fake.server = await asyncio.start_server(fake._serve, "127.0.0.1", 0)
    port = fake.server.sockets[0].getsockname()[1]
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        fake.server.close()
        await fake.server.wait_closed()


async def test_kept_alive_connection_is_reused_across_probes(keepalive_server: tuple[KeepAliveServer, str]) -> None:
    fake, base = keepalive_server
    connection = ProbeConnection(base)
    prober = HealthProber()
    try:
        for _ in range(20):
            result = await prober.health(base, 1.0, connection=connection)
            assert result.ok and result.status == 200, result
        assert fake.accepted == 1 and fake.requests == 20 and connection.connects == 1
        fake.answer = LOADING_ANSWER
        loading = await prober.health(base, 1.0, connection=connection)
        assert loading.loading and loading.status == 503 and not loading.ok
        assert fake.accepted == 1 and connection.is_open
    finally:
        connection.close()


async def test_server_closing_the_idle_connection_means_a_transparent_reconnect(
    keepalive_server: tuple[KeepAliveServer, str],
) -> None:
    fake, base = keepalive_server
    connection = ProbeConnection(base)
    try:
        fake.mode = "close-after"  # answered, then closed as idle: the next probe sees it closed
        assert (await connection.get("/health", 1.0)).ok
        fake.mode = "ok"
        assert (await connection.get("/health", 1.0)).ok
        assert fake.accepted == 2
        fake.mode = "drop-next"  # closed as the request arrives, nothing answered: one retry, fresh
        result = await connection.get("/health", 1.0)
        assert result.ok, result
        assert fake.accepted == 3 and fake.requests == 4
        assert (await connection.get("/health", 1.0)).ok
        assert fake.accepted == 3
    finally:
        connection.close()


async def test_timeout_drops_the_connection_and_a_late_answer_is_never_read(
    keepalive_server: tuple[KeepAliveServer, str],
) -> None:
    fake, base = keepalive_server
    connection = ProbeConnection(base)
    try:
        assert (await connection.get("/health", 1.0)).ok
        fake.mode = "silent"
        timed_out = await connection.get("/health", 0.2)
        assert not timed_out.ok and timed_out.status is None and "no answer within 0.2 s" in timed_out.detail
        assert not connection.is_open
        fake.mode = "ok"
        fake.answer_held_late()  # on the dropped connection: must not become the next probe's answer
        result = await connection.get("/health", 1.0)
        assert result.ok and result.status == 200, result
        assert fake.accepted == 2 and connection.connects == 2
    finally:
        connection.close()


async def test_kept_alive_silent_refused_and_garbage_answers(keepalive_server: tuple[KeepAliveServer, str]) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        connection = ProbeConnection(f"http://127.0.0.1:{silent.getsockname()[1]}")
        result = await connection.get("/health", 0.3)
        assert not result.ok and "no answer within 0.3 s" in result.detail and not connection.is_open
    connection = ProbeConnection(f"http://127.0.0.1:{free_port()}")
    refused = await connection.get("/health", 1.0)
    assert not refused.ok and "connection failed" in refused.detail and not connection.is_open
    fake, base = keepalive_server
    fake.answer = b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n"
    connection = ProbeConnection(base)
    garbage = await connection.get("/health", 1.0)
    assert not garbage.ok and garbage.detail == "not an HTTP answer" and not connection.is_open


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_no_fd_growth_over_200_probes_with_reconnects(keepalive_server: tuple[KeepAliveServer, str]) -> None:
    fake, base = keepalive_server
    connection = ProbeConnection(base)
    try:
        assert (await connection.get("/health", 1.0)).ok
        before = _fds()
        for i in range(200):
            fake.mode = "close-after" if i % 10 == 9 else ("drop-next" if i % 10 == 4 else "ok")
            result = await connection.get("/health", 1.0)
            assert result.ok, (i, result)
        fake.mode = "ok"
        assert (await connection.get("/health", 1.0)).ok
        assert fake.accepted > 20
        # the server's side of closed connections goes as its handlers finish
        assert await async_wait_until(lambda: _fds() <= before, 5.0, message=f"fds back to {before}")
    finally:
        connection.close()


def test_daemon_closes_each_childs_probe_connection_on_restart_and_stop(home: Home, tmp_path: Path) -> None:
    model = tmp_path / "fake.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 64)
    port = free_port()
    home.write_instance("kept", model=model, port=port, binary=home.fake_binary())  # interval 0.2 s: kept alive
    home.start_daemon()
    daemon = psutil.Process(home.daemon_pid())

    def probe_sockets() -> int:
        return sum(1 for c in daemon.net_connections("tcp") if c.raddr and c.raddr.port == port)

    home.ok("start", "kept")
    wait_until(lambda: probe_sockets() == 1, 10, message="one kept-alive probe connection")
    baseline = daemon.num_fds()
    for _ in range(3):
        home.ok("restart", "kept")
        assert home.status("kept").state == "ready"
        wait_until(lambda: probe_sockets() == 1, 10, message="still one probe connection after a restart")
    assert daemon.num_fds() <= baseline + 2, (daemon.num_fds(), baseline)
    home.ok("stop", "kept")
    wait_until(lambda: probe_sockets() == 0, 10, message="the probe connection closed with the stop")
    assert daemon.num_fds() < baseline
