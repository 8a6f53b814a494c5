"""A real daemon running fake llama-servers, for the dashboard's Pilot tests.

`RealFleet` writes a home (no gateway: port 8000 may be taken), one config per instance whose
`binary` is a wrapper script exec-ing tests/bin/fake_llama_server.py, starts the daemon for that
home (no autostart) and brings the instances up. `close()` always stops the daemon through
`DaemonClient.shutdown()` (which stops the instances), waits for its pid and kills it by pid if
it does not exit.
"""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from llama_orchestrator.config.paths import HomePaths
from llama_orchestrator.daemon.client import DaemonClient
from llama_orchestrator.daemon.launcher import start_detached
from llama_orchestrator.daemon.protocol import InstanceStatus
from llama_orchestrator.errors import OrchestratorError
from tests.support.ports import free_port

FAKE_SERVER = Path(__file__).resolve().parents[1] / "bin" / "fake_llama_server.py"


@dataclass
class RealFleet:
    root: Path
    client: DaemonClient | None = None
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.paths = HomePaths(self.root)
        self.paths.ensure()
        self.paths.orchestrator_file.write_text(json.dumps({"gateway": {"enabled": False}}))
        self.binary = self.root / "fake-llama-server.sh"
        self.binary.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_SERVER}" "$@"\n')
        self.binary.chmod(0o755)
        self.model = self.root / "model.gguf"
        self.model.write_bytes(b"GGUF")

    def add(self, name: str, **env: str) -> None:
        config = {
            "name": name,
            "model": {"path": str(self.model)},
            "server": {"port": free_port()},
            "binary": str(self.binary),
            "env": env,
            "health": {"interval_s": 0.2, "timeout_s": 0.5, "start_poll_s": 0.05, "start_timeout_s": 20.0},
            # The daemon restarts a first crash at once; later ones wait (a long time here).
            "restart": {"policy": "on-failure", "backoff_initial_s": 60.0, "backoff_max_s": 60.0,
                        "stop_grace_s": 1.0},
        }
        directory = self.paths.instance_dir(name)
        directory.mkdir(parents=True, exist_ok=True)
        self.paths.instance_config(name).write_text(json.dumps(config))
        self.names.append(name)

    def start(self, *, up: list[str] | None = None) -> DaemonClient:
        self.client = start_detached(self.paths, autostart=False)
        names = self.names if up is None else up
        if names:
            result = self.client.act("up", names, wait_s=30.0)
            states = {s.name: s.state for s in result.instances}
            assert all(states[n] == "ready" for n in names), states
        return self.client

    def status(self, name: str) -> InstanceStatus:
        assert self.client is not None
        return next(s for s in self.client.instances() if s.name == name)

    def close(self) -> None:
        client, self.client = self.client, None
        if client is None or client.pid is None:
            return
        with contextlib.suppress(OrchestratorError):
            client.shutdown()
        try:
            daemon = psutil.Process(client.pid)
        except psutil.NoSuchProcess:
            return
        try:
            daemon.wait(timeout=20)
        except psutil.TimeoutExpired:
            daemon.kill()
            daemon.wait(timeout=5)
