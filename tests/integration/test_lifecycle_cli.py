"""`up`, `restart`, `down`, `stop`, `rm` and `--timeout` as a user runs them, against a real daemon
and the fake llama-server: `up` and `restart` refuse a changed command line its server would refuse
before stopping anything, `down` and `stop` with nothing running start no daemon, a wait that
runs out is exit 9 naming what is still under way, and `rm` removes several running instances."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import psutil
import pytest
from tests.support.orch import Home, instance_pids, wait_gone
from tests.support.ports import free_port
from tests.support.server_help import fake_server_with_help
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration]


def _set_args(home: Home, name: str, args: list[str]) -> None:
    path = home.paths.instance_config(name)
    config = json.loads(path.read_text(encoding="utf-8"))
    config["args"] = args
    path.write_text(json.dumps(config), encoding="utf-8")


def test_up_and_restart_refuse_a_changed_command_line_its_server_would_refuse_and_stop_nothing(
    home: Home, model: Path
) -> None:
    binary = fake_server_with_help(home.scratch)
    for name in ("r1", "r2"):
        home.write_instance(name, model=model, port=free_port(), binary=binary)
    home.start_daemon()
    home.ok("up", "r1", "r2")
    before = {name: home.status(name).pid or 0 for name in ("r1", "r2")}
    _set_args(home, "r1", ["-c", "512"])  # a good change, held back with the bad one
    _set_args(home, "r2", ["--ctx-sise", "512"])
    assert home.status("r2").changed == "added --ctx-sise 512"

    up = home.cli("up")
    assert up.code == 2, str(up)
    text = " ".join(up.err.split())
    config_file = home.paths.instance_config("r2")
    assert f"{config_file}: args: --ctx-sise is not a flag of {binary}; did you mean --ctx-size?" in text, text
    assert "nothing was stopped or started: r2 runs on as before" in text, text
    assert "→" not in up.err, str(up)  # no transition at all
    for name in ("r1", "r2"):
        status = home.status(name)
        assert (status.state, status.pid) == ("ready", before[name]), status
        assert instance_pids(name) == {before[name]}
        assert not [e for e in home.events(name) if e.to_state == "stopping"]
    restart = home.cli("restart", "r2")
    assert restart.code == 2, str(restart)
    assert "r2 runs on as before; fix the config, then `llama-orch restart` again" in " ".join(restart.err.split())
    assert home.status("r2").pid == before["r2"] and not [e for e in home.events("r2") if e.to_state == "stopping"]

    os.kill(before["r2"], signal.SIGKILL)  # a crash restarts into the config it ran with, not the refused edit
    crashed_pid = before["r2"]
    wait_gone(crashed_pid, 10)
    again = wait_until(lambda: (s := home.status("r2")).state == "ready" and s.pid not in (None, crashed_pid) and s,
                       30, message="r2 restarted after its crash")
    assert again.pid is not None and "--ctx-sise" not in psutil.Process(again.pid).cmdline()
    assert again.changed == "added --ctx-sise 512"  # still marked: `up` applies it once it can start
    before["r2"] = again.pid

    _set_args(home, "r2", ["--ctx-size", "512"])
    up = home.ok("up")
    assert "r2: ready → stopping  config changed" in up.err and "r1: ready → stopping" in up.err, str(up)
    for name in ("r1", "r2"):
        assert home.status(name).pid not in (None, before[name])
        wait_gone(before[name], 5)


def test_up_whose_timeout_runs_out_is_exit_9_naming_what_is_still_starting(home: Home, model: Path) -> None:
    home.write_instance("quick", model=model, port=free_port(), binary=home.fake_binary())
    home.write_instance("slow", model=model, port=free_port(), binary=home.fake_binary(),
                        env={"FAKE_LOAD_SECONDS": "120"}, health={"start_timeout_s": 300})
    home.start_daemon()
    up = home.cli("up", "quick", "slow", "--timeout", "2")
    assert up.code == 9, str(up)
    assert "✓ quick: ready on 127.0.0.1:" in up.out, str(up)
    assert "slow" not in up.out, str(up)  # no ✓ for what is not ready
    text = " ".join(up.err.split())
    assert "slow is still starting after --timeout 2 s; the daemon carries on with it" in text, text
    assert "`llama-orch ps` shows where it stands; `llama-orch logs slow -f` follows its output" in text, text
    assert home.status("slow").state == "starting"  # not given up on: still loading


def test_rm_removes_several_instances_stopping_the_running_ones(home: Home, model: Path) -> None:
    for name in ("a", "b", "c"):
        home.write_instance(name, model=model, port=free_port(), binary=home.fake_binary())
    home.start_daemon()
    home.ok("up", "a", "b")
    pids = {name: home.status(name).pid or 0 for name in ("a", "b")}

    refused = home.cli("rm", "-y", "a", "ghost", "b")
    assert refused.code == 4, str(refused)
    assert "no instance named 'ghost'" in refused.err and "nothing was removed" in refused.err, str(refused)
    assert {s.name: s.state for s in home.client().instances()} == {"a": "ready", "b": "ready", "c": "stopped"}

    removed = home.ok("rm", "-y", "a", "b", "a")
    assert removed.out.splitlines() == ["✓ removed a", "✓ removed b"], str(removed)
    assert "stopping a first" in removed.err and "stopping b first" in removed.err, str(removed)
    for name in ("a", "b"):
        wait_gone(pids[name], 5)
        assert not home.paths.instance_dir(name).exists()
    assert [s.name for s in home.client().instances()] == ["c"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_BATCH is Linux's")
def test_the_daemon_runs_under_sched_batch_and_its_llama_servers_do_not(home: Home, model: Path) -> None:
    home.write_instance("s", model=model, port=free_port(), binary=home.fake_binary())
    home.start_daemon()
    home.ok("up", "s")
    server = home.status("s").pid
    assert server
    assert os.sched_getscheduler(home.daemon_pid()) == os.SCHED_BATCH  # its main thread runs the loop
    assert os.sched_getscheduler(server) == os.SCHED_OTHER
    assert "batch scheduling" in home.paths.daemon_log.read_text()


def test_down_and_stop_with_nothing_running_start_no_daemon(home: Home, model: Path) -> None:
    for name in ("a", "b"):
        home.write_instance(name, model=model, port=free_port(), binary=home.fake_binary())
    down = home.ok("down")
    assert "✓ a: stopped" in down.out and "✓ b: stopped" in down.out, str(down)
    assert "none was started" in down.err, str(down)
    assert home.ok("stop", "b").out.count("stopped") == 1
    unknown = home.cli("stop", "nope")
    assert unknown.code == 4 and "nope" in unknown.err, str(unknown)
    assert not home.daemon_running()
    assert not home.paths.control_file.exists()
