"""An edited config `up` must not apply, on the real llama-server: a misspelt flag is refused
before the running instance is stopped (exit 2, the flag it meant named), and it serves on."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from tests.support.orch import Home, instance_pids
from tests.support.ports import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.real_server]


def _health(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return int(response.status)
    except OSError:
        return 0


def test_up_refuses_a_misspelt_flag_in_an_edited_config_and_the_instance_serves_on(
    home: Home, tiny_model: Path, llama_server_bin: Path
) -> None:
    port = free_port()
    home.ok("create", "r2", "--model", str(tiny_model), "--port", str(port))
    home.ok("up", timeout_s=120)
    home.remember_daemon()
    (pid,) = instance_pids("r2")
    config_file = home.paths.instance_config("r2")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["args"] = ["--ctx-sise", "512"]
    config_file.write_text(json.dumps(config), encoding="utf-8")
    assert "ready*" in home.ok("ps").out

    up = home.cli("up", timeout_s=60)
    assert up.code == 2, str(up)
    text = " ".join(up.err.split())
    assert f"args: --ctx-sise is not a flag of {llama_server_bin}; did you mean --ctx-size?" in text, text
    assert "nothing was stopped or started: r2 runs on as before" in text, text
    assert instance_pids("r2") == {pid} and _health(port) == 200
    assert home.status("r2").state == "ready"
    assert not [e for e in home.events("r2") if e.to_state == "stopping"]
