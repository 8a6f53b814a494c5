"""`llama-orch` as a new user runs it, on the real llama-server and the tiny model.

create → config validate/render → up → ps → logs → inspect → restart → down → events, checking
each exit code and that each message tells the truth (against /health, /proc and the log file);
then bad input: an unknown instance (exit 4) and a broken config (exit 2, every problem listed).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import urllib.request
from pathlib import Path

import pytest
from tests.support.orch import Home, instance_pids, wait_gone
from tests.support.ports import free_port
from tests.support.procs import running
from tests.support.tiny_model import N_CTX
from tests.support.waiting import wait_until

from llama_orchestrator import units

pytestmark = [pytest.mark.e2e, pytest.mark.real_server]


def _health(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return int(response.status)
    except OSError:
        return 0


def test_happy_path_from_create_to_down(home: Home, tiny_model: Path, llama_server_bin: Path) -> None:
    port = free_port()
    created = home.ok("create", "tiny", "--model", str(tiny_model), "--port", str(port), "--", "-c", "512")
    assert f"created tiny: port {port}" in created.out, str(created)
    config_file = home.paths.instance_config("tiny")  # further names, edited in as a user would
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["model"]["aliases"] = ["gpt-4o-mini"]
    config["variants"] = {"tiny-cold": {"set_params": {"temperature": 0.1}}}
    config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")
    home.ok("config", "validate")
    rendered = json.loads(home.ok("config", "render", "tiny", "--json").out)
    assert rendered["argv"][0] == str(llama_server_bin)
    assert rendered["argv"][-2:] == ["-c", "512"] and "--port" in rendered["argv"], rendered

    up = home.ok("up", timeout_s=120)
    assert f"tiny: ready on 127.0.0.1:{port}" in up.out, str(up)
    assert "starting → ready" in up.err, str(up)  # progress streamed while waiting
    home.remember_daemon()
    assert _health(port) == 200

    ps = home.ok("ps")
    row = next(line.split() for line in ps.out.splitlines() if line.strip().startswith("tiny"))
    (pid,) = instance_pids("tiny")
    assert row[:4] == ["tiny", "ready", str(pid), str(port)], ps.out
    header = next(line.split() for line in ps.out.splitlines() if line.strip().startswith("NAME"))
    assert header[7] == "MEM" and "GPU" not in header, ps.out  # no nvidia-smi here
    assert re.fullmatch(r"\d+\.\dMiB", row[7]), ps.out  # the tiny model's llama-server: some MiB resident

    logs = home.ok("logs", "tiny", "-n", "5").out.splitlines()
    on_disk = home.log_text("tiny").splitlines()
    assert len(logs) == 5 and logs == on_disk[-5:], (logs, on_disk[-5:])

    detail = json.loads(home.ok("inspect", "tiny", "--json").out)
    assert detail["argv"] == rendered["argv"], (detail["argv"], rendered["argv"])
    assert detail["status"]["pid"] == pid and detail["status"]["state"] == "ready"
    assert detail["log_path"] == str(home.paths.instance_log("tiny"))
    assert detail["model_file"] == {"bytes": tiny_model.stat().st_size, "architecture": "llama",
                                    "name": "llama-orchestrator tiny test model", "size_label": "",
                                    "quantization": "F32", "trained_context": N_CTX, "problem": None,
                                    "chat_template": False}
    human = home.ok("inspect", "tiny").out
    assert f"pid        {pid}" in human and f"http://127.0.0.1:{port}" in human, human
    size = units.size(tiny_model.stat().st_size)
    assert f"gguf       llama · F32 · trained for {N_CTX} tokens · {size}" in human, human
    assert "also       gpt-4o-mini, tiny-cold (variant)" in human, human
    assert "chat the model file holds no chat template, so llama-server formats every chat as ChatML" \
        in " ".join(human.split()), human  # (as wrapped for the terminal)
    # what a gateway memory budget counts before the instance has run: the tiny model's 2 layers of
    # 2 KV heads of 16 floats, K and V in f16, for each token of its context
    memory = detail["memory_estimate"]
    assert memory["pool"] == "ram" and memory["kv_cache"] == 2 * 2 * 2 * 16 * 2 * memory["tokens"]
    assert memory["weights"] == tiny_model.stat().st_size
    assert f"memory     ~{units.size(memory['bytes'])}: weights {size}" in human, human

    restarted = home.ok("restart", "tiny", timeout_s=120)
    assert "tiny: ready" in restarted.out, str(restarted)
    (new_pid,) = instance_pids("tiny")
    assert new_pid != pid
    wait_gone(pid, 5)
    assert home.status("tiny").restarts == 0  # a requested restart is not a crash
    assert _health(port) == 200

    down = home.ok("down")
    assert "tiny: stopped" in down.out, str(down)
    wait_gone(new_pid, 5)
    assert instance_pids("tiny") == set() and _health(port) == 0
    assert "tiny" not in home.ok("ps").out.split()  # stopped instances are hidden...
    assert "stopped" in home.ok("ps", "-a").out  # ...unless asked for

    events = [json.loads(line) for line in home.ok("events", "tiny", "--json").out.splitlines()]
    transitions = [(e["from_state"], e["to_state"]) for e in events]
    assert transitions[-7:] == [
        ("stopped", "starting"), ("starting", "ready"),
        ("ready", "stopping"), ("stopping", "starting"), ("starting", "ready"),
        ("ready", "stopping"), ("stopping", "stopped"),
    ], transitions

    # The rendered command is the real one: run it by hand and it serves.
    command = shlex.split(home.ok("config", "render", "tiny").out.strip().splitlines()[-1])
    assert command == rendered["argv"]
    with running(command, None, home.scratch / "by-hand.log"):
        wait_until(lambda: _health(port) == 200, 30, 0.05, "the hand-started server answers")


def test_unknown_instance_is_exit_4_naming_it(home: Home) -> None:
    for args in (("start", "ghost"), ("stop", "ghost"), ("logs", "ghost"), ("inspect", "ghost"), ("rm", "ghost", "-y")):
        result = home.cli(*args)
        assert result.code == 4, str(result)
        assert "no instance named 'ghost'" in result.err, str(result)


def test_config_errors_are_exit_2_listing_every_problem(home: Home, tiny_model: Path) -> None:
    bad = home.paths.instance_config("broken")
    bad.parent.mkdir(parents=True)
    bad.write_text(json.dumps({
        "name": "broken",
        "model": {"path": str(tiny_model), "context_size": "abc"},
        "server": {"port": 70000},
        "health": {"timeout_s": -1},
        "restart_polcy": {"policy": "always"},
    }))
    validate = home.cli("config", "validate")
    assert validate.code == 2, str(validate)
    for field in ("model.context_size", "server.port", "health.timeout_s", "restart_polcy"):
        assert field in validate.text, f"{field} missing from:\n{validate}"
    assert "restart" in validate.text  # the nearest valid key is suggested
    assert "4 problem(s)" in validate.text, str(validate)

    start = home.cli("start", "broken")
    assert start.code == 2, str(start)
    for field in ("model.context_size", "server.port", "health.timeout_s", "restart_polcy"):
        assert field in start.text, f"{field} missing from:\n{start}"
    home.remember_daemon()
    assert instance_pids("broken") == set() and not home.paths.instance_log("broken").exists()


def test_adoption_keeps_the_uptime_and_a_removed_model_fails_with_the_reason_in_the_log(
    home: Home, tiny_model: Path
) -> None:
    model = home.scratch / "removable.gguf"
    model.write_bytes(tiny_model.read_bytes())
    home.ok("create", "gone", "--model", str(model), "--port", str(free_port()))
    home.ok("up", "gone", timeout_s=120)
    home.remember_daemon()
    before = json.loads(home.ok("ps", "--json").out)["instances"][0]

    # the daemon dies; the next one adopts the server: same process, same ready time, uptime goes on
    daemon = home.daemon_pid()
    os.kill(daemon, 9)
    wait_gone(daemon)
    home.start_daemon()  # a new daemon, which adopts (`ps` starts none)
    after = home.wait_state("gone", "ready", timeout_s=20)
    assert after.pid == before["pid"] and after.ready_at == before["ready_at"], (before, after)
    assert after.uptime_s is not None and after.uptime_s >= before["uptime_s"]

    # the model file goes away: the restart fails before spawning, and says why where users look
    model.unlink()
    failed = home.cli("restart", "gone", timeout_s=60)
    assert failed.code == 6, str(failed)
    assert f"model file not found: {model}" in failed.err, str(failed)
    shown = [line for line in failed.err.splitlines() if line.startswith("  ")]
    assert shown and f"not started: model file not found: {model}" in shown[-1], str(failed)  # not an old run's tail
    assert f"not started: model file not found: {model}" in home.ok("logs", "gone", "-n", "1").out
    assert f"gguf       model file not found: {model}" in home.ok("inspect", "gone").out
    assert home.status("gone").state == "failed" and instance_pids("gone") == set()
    # `down` acknowledges the failure: done (exit 0), stopped, the error still on record
    down = home.ok("down")
    assert "gone: stopped" in down.out, str(down)
    assert home.status("gone").state == "stopped" and "model file not found" in (home.status("gone").last_error or "")


def test_an_instance_the_user_stopped_stays_down_when_the_daemon_starts_again(home: Home, tiny_model: Path) -> None:
    """As Docker's `unless-stopped`: a daemon restart (the README's `daemon stop --keep-instances;
    daemon start`) or a full stop and start (a reboot) brings back what ran, not what `down` stopped,
    until `up` starts it again."""
    for name in ("kept", "held"):
        home.ok("create", name, "--model", str(tiny_model), "--port", str(free_port()), "--", "-c", "512")
    home.start_daemon(autostart=True)
    home.wait_state("kept", "ready", timeout_s=60)
    home.wait_state("held", "ready", timeout_s=60)
    home.ok("down", "held")

    def restart_daemon(*stop: str) -> None:
        since = len(home.paths.daemon_log.read_text().splitlines())
        home.ok("daemon", "stop", *stop, timeout_s=60)
        home.start_daemon(autostart=True)
        wait_until(lambda: any("daemon" in line and "ready (pid" in line
                               for line in home.paths.daemon_log.read_text().splitlines()[since:]),
                   30, 0.05, "the new daemon ready (its autostart done)")

    for stop in (("--keep-instances",), ()):
        restart_daemon(*stop)
        assert "not started, stopped by the user: held" in home.paths.daemon_log.read_text()
        assert home.wait_state("kept", "ready", timeout_s=60).state == "ready"
        assert home.status("held").state == "stopped" and instance_pids("held") == set()

    home.ok("up", "held", timeout_s=60)  # started again: the next daemon brings it back too
    restart_daemon()
    assert home.wait_state("held", "ready", timeout_s=60).state == "ready"


def test_up_restarts_what_a_config_change_concerns_and_nothing_else(home: Home, tiny_model: Path) -> None:
    home.ok("create", "edited", "--model", str(tiny_model), "--port", str(free_port()), "--", "-c", "512")
    home.ok("create", "kept", "--model", str(tiny_model), "--port", str(free_port()))
    home.ok("up", timeout_s=120)
    home.remember_daemon()
    (edited,), (kept,) = instance_pids("edited"), instance_pids("kept")
    assert "*" not in home.ok("ps").out

    config_file = home.paths.instance_config("edited")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["args"] = ["--no-warmup", "-c", "1024"]
    config["restart"] = {"stop_grace_s": 7}  # the supervisor's own setting: no new command line
    config_file.write_text(json.dumps(config), encoding="utf-8")
    ps = home.ok("ps").out
    rows = {line.split()[0]: line.split() for line in ps.splitlines()[2:] if line.strip()}
    assert rows["edited"][1] == "ready*" and rows["kept"][1] == "ready", ps
    assert "config changed since it started: `llama-orch up` applies it (restarting it only" in ps, ps
    change = "added --no-warmup; -c 512 → -c 1024"
    assert home.status("edited").changed == f"{change}; settings restart.stop_grace_s"
    assert (f"changed    {change}; settings restart.stop_grace_s (`llama-orch up edited` applies it)"
            in home.ok("inspect", "edited").out)

    up = home.ok("up", timeout_s=120)
    assert f"edited: ready → stopping  config changed: {change}" in up.err, str(up)
    assert "stop_grace_s" not in up.err, str(up)  # the restart is for the command line
    (renewed,) = instance_pids("edited")
    assert renewed != edited and instance_pids("kept") == {kept}
    wait_gone(edited, 5)
    assert home.status("edited").changed is None and "*" not in home.ok("ps").out

    # an adopted process is compared by the command line it runs with
    daemon = home.daemon_pid()
    os.kill(daemon, 9)
    wait_gone(daemon)
    home.start_daemon()
    assert home.wait_state("edited", "ready", timeout_s=20).changed is None
    config["args"] = ["-c", "1024"]
    config_file.write_text(json.dumps(config), encoding="utf-8")
    assert home.status("edited").changed == "removed --no-warmup"
