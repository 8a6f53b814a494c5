"""The health probes against real sockets: ready, loading, silent, refused, deep."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from tests.support.ports import free_port
from tests.support.procs import marked_env, running
from tests.support.waiting import async_wait_until

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
            completion = await prober.completion(base, 10.0)
            assert completion.ok
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
