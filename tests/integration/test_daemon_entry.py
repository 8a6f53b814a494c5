"""The daemon's foreground entry point as the Windows service host calls it: in a non-main
thread, stopped through a threading.Event (no signals reach it there)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from tests.support.waiting import wait_until

from llama_orchestrator.autostart.windows_service import load_daemon_entry
from llama_orchestrator.config.paths import HomePaths
from llama_orchestrator.daemon.client import DaemonClient
from llama_orchestrator.daemon.entry import run_daemon
from llama_orchestrator.errors import OrchestratorError

pytestmark = pytest.mark.integration


def test_service_entry_point_resolves_to_run_daemon() -> None:
    assert load_daemon_entry() is run_daemon


def test_run_daemon_in_a_thread_stops_when_the_event_is_set(tmp_path: Path) -> None:
    paths = HomePaths(tmp_path / "home")
    paths.ensure()
    paths.orchestrator_file.write_text(json.dumps({"gateway": {"enabled": False}}))
    stop = threading.Event()
    outcome: dict[str, object] = {}

    def serve() -> None:
        outcome["code"] = run_daemon(paths, stop)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = wait_until(lambda: _connect(paths), 30.0, message="daemon answers on its control API")
    assert client.status().pid > 0
    stop.set()
    thread.join(30.0)
    assert not thread.is_alive()
    assert outcome["code"] == 0
    assert not paths.control_file.exists()  # a clean exit removes its control file


def _connect(paths: HomePaths) -> DaemonClient | None:
    try:
        return DaemonClient.connect(paths)
    except OrchestratorError:
        return None
