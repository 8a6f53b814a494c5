"""Faults only the fake llama-server can stage, under the real daemon (scenarios 3, 6, 7, 8).

Slow loads with and without progress lines, a child ignoring SIGTERM, a forking wrapper with a
grandchild, stop while loading and start while stopping. The daemon is a real detached process
started with `llama-orch daemon start`; every command goes through the `llama-orch` CLI.
"""

from __future__ import annotations

import json
import os
import signal
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest
from tests.support.orch import Home, InstanceSampler, instance_pids, instance_processes, wait_gone
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def _starts(home: Home, name: str) -> list[str]:
    return [e.reason for e in home.events(name) if e.to_state == "starting"]


def test_slow_load_with_progress_outlives_its_start_timeout(home: Home, model: Path) -> None:
    # 5 s of loading against a 2 s start timeout: the progress dots keep moving the deadline
    # (the daemon takes at most one progress event a second, so 2 s leaves room on a busy box).
    home.write_instance(
        "slow", model=model, port=free_port(), binary=home.fake_binary(),
        env={"FAKE_LOAD_SECONDS": "5"}, health={"start_timeout_s": 2.0},
    )
    home.start_daemon()
    with InstanceSampler("slow") as sampler:
        home.ok("start", "slow", "-d")
        starting = home.wait_state("slow", "starting")
        first_pid = wait_until(lambda: home.status("slow").pid, 10, message="slow has a pid")
        result = home.ok("start", "slow", "--timeout", "30")
    sampler.assert_never_two()
    assert "slow: ready" in result.out, str(result)
    status = home.status("slow")
    assert status.state == "ready" and status.pid == first_pid, status
    assert status.restarts == 0, status
    assert starting.restarts == 0
    reasons = [e.reason for e in home.events("slow")]
    assert not any("start-timeout" in r for r in reasons), reasons
    assert home.log_text("slow").count("\n.\n") >= 5, "the fake printed no loading progress"


def test_load_without_progress_is_killed_at_the_start_timeout_and_retried(home: Home, model: Path) -> None:
    # Output thrown away: nothing in the log says the load is moving, so 1 s is all it gets.
    home.write_instance(
        "stuck", model=model, port=free_port(), binary=home.fake_binary(quiet=True),
        env={"FAKE_LOAD_SECONDS": "60"}, health={"start_timeout_s": 1.0},
        restart={"max_start_failures": 2},
    )
    home.start_daemon()
    pids: set[int] = set()

    def note_pids() -> bool:
        pids.update(instance_pids("stuck"))
        return home.status("stuck").state == "failed"

    with InstanceSampler("stuck") as sampler:
        home.ok("start", "stuck", "-d")
        wait_until(note_pids, 30, 0.05, "stuck fails after two timed-out starts")
    sampler.assert_never_two()
    status = home.status("stuck")
    assert "start-timeout" in (status.last_error or ""), status
    assert "failed 2 start(s) in a row" in (status.last_error or ""), status
    events = home.events("stuck")
    kills = [e for e in events if e.to_state == "stopping" and e.reason.startswith("start-timeout")]
    assert len(kills) == 2, events
    assert len(_starts(home, "stuck")) == 2, events
    assert len(pids) == 2, f"expected two attempts, saw pids {pids}"
    assert instance_pids("stuck") == set(), "a timed-out start left a process behind"


def test_child_ignoring_sigterm_is_killed_after_the_grace_period(home: Home, model: Path) -> None:
    home.write_instance(
        "stubborn", model=model, port=free_port(), binary=home.fake_binary(),
        env={"FAKE_IGNORE_SIGTERM": "1", "FAKE_SPAWN_GRANDCHILD": "1"}, restart={"stop_grace_s": 1.0},
    )
    home.start_daemon()
    home.ok("start", "stubborn")
    pid = home.status("stubborn").pid
    assert pid is not None
    group = wait_until(lambda: instance_pids("stubborn") if len(instance_pids("stubborn")) == 2 else None, 10,
                       message="the fake and its grandchild run")
    assert {psutil.Process(p).pid for p in group if os.getpgid(p) == pid} == group, "not one process group"

    result = home.ok("stop", "stubborn", "--timeout", "10")
    assert "stubborn: stopped" in result.out, str(result)
    for p in group:
        wait_gone(p, 5)
    assert instance_pids("stubborn") == set()
    assert home.log_text("stubborn").count("fake: ignoring SIGTERM") >= 2, "SIGTERM was never sent"
    stopped = [e for e in home.events("stubborn") if e.to_state == "stopped"][-1]
    assert "killed" in stopped.reason and "stopped gracefully" not in stopped.reason, stopped


def test_forking_wrapper_grandchildren_die_with_the_instance(home: Home, model: Path) -> None:
    # bash backgrounds the fake without exec; the fake forks a sleeping grandchild of its own.
    home.write_instance(
        "wrapped", model=model, port=free_port(), binary=home.fake_binary(wrapper=True),
        env={"FAKE_SPAWN_GRANDCHILD": "1"},
    )
    home.start_daemon()
    home.ok("start", "wrapped")
    tree = wait_until(lambda: instance_processes("wrapped") if len(instance_processes("wrapped")) == 3 else None,
                      10, message="wrapper, fake and grandchild run")
    names = sorted(p.name() for p in tree)
    assert any("bash" in n for n in names), names
    home.ok("stop", "wrapped", "--timeout", "10")
    for proc in tree:
        wait_gone(proc.pid, 5)
    assert instance_pids("wrapped") == set()
    assert home.status("wrapped").state == "stopped"


def test_stop_while_loading_kills_the_loading_child(home: Home, model: Path) -> None:
    home.write_instance(
        "loading", model=model, port=free_port(), binary=home.fake_binary(),
        env={"FAKE_LOAD_SECONDS": "60"}, health={"start_timeout_s": 120},
    )
    home.start_daemon()
    home.ok("start", "loading", "-d")
    wait_until(lambda: ". " in home.log_text("loading").replace("\n", " "), 10, message="the load is under way")
    pid = home.status("loading").pid
    assert pid is not None and home.status("loading").state == "starting"
    # --timeout bounds the wait: a stop that takes longer reports `stopping`, not `stopped`.
    result = home.ok("stop", "loading", "--timeout", "3")
    assert "loading: stopped" in result.out, str(result)
    wait_gone(pid, 2)
    assert instance_pids("loading") == set()
    stopped = [e for e in home.events("loading") if e.to_state == "stopped"][-1]
    assert "killed" in stopped.reason, stopped


def test_start_during_stop_waits_for_the_stop_then_runs_exactly_one_process(home: Home, model: Path) -> None:
    # A graceful shutdown that takes 4 s leaves a window in which `start` arrives mid-stop (wide
    # enough for a CLI start-up on a loaded 2-core machine).
    home.write_instance(
        "bounce", model=model, port=free_port(), binary=home.fake_binary(),
        env={"FAKE_STOP_SECONDS": "4"}, restart={"stop_grace_s": 10},
    )
    home.start_daemon()
    home.ok("start", "bounce")
    old = home.status("bounce").pid
    assert old is not None
    with InstanceSampler("bounce") as sampler:
        home.ok("stop", "bounce", "-d")
        home.wait_state("bounce", "stopping")
        result = home.ok("start", "bounce", "--timeout", "30")
    sampler.assert_never_two()
    assert "bounce: ready" in result.out, str(result)
    status = home.status("bounce")
    assert status.state == "ready" and status.pid not in (None, old), status
    assert instance_pids("bounce") == {status.pid}
    assert not psutil.pid_exists(old) or psutil.Process(old).status() == psutil.STATUS_ZOMBIE
    states = [e.to_state for e in home.events("bounce")]
    assert states[-3:] == ["stopping", "starting", "ready"], states


def test_a_request_held_for_an_on_demand_instance_survives_a_kill_mid_load(home: Home, model: Path) -> None:
    # The gateway holds a chat request while "lazy" loads (1.5 s); the process is killed mid-load.
    # The daemon restarts it at once and the same request is answered by the new process.
    gateway_port = free_port()
    home.paths.orchestrator_file.write_text(json.dumps({"gateway": {"port": gateway_port}}))
    home.write_instance("lazy", model=model, port=free_port(), binary=home.fake_binary(),
                        env={"FAKE_LOAD_SECONDS": "1.5"}, on_demand=True)
    home.start_daemon()

    def chat() -> tuple[int, dict[str, Any]]:
        body = json.dumps({"model": "lazy", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3})
        request = urllib.request.Request(f"http://127.0.0.1:{gateway_port}/v1/chat/completions", body.encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, json.loads(resp.read())

    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(chat)
        first_pid = wait_until(lambda: home.status("lazy").state == "starting" and home.status("lazy").pid, 15,
                               message="lazy is loading because of the request")
        os.kill(first_pid, signal.SIGKILL)
        status, body = answer.result(timeout=60)
    assert status == 200 and body["choices"][0]["message"]["content"]
    after = home.status("lazy")
    assert after.state == "ready" and after.pid not in (None, first_pid) and after.restarts == 1, after
    # the retry is in the event log too, though the state stayed `starting`
    retries = [e for e in home.events("lazy") if e.from_state == e.to_state == "starting"]
    assert len(retries) == 1, home.events("lazy")
    assert "exited during start (killed by signal 9)" in retries[0].reason, retries


def serve_busy(home: Home, model: Path) -> str:
    """A daemon whose gateway serves `busy`, a fake that streams a token every 50 ms and may take
    20 s to stop, already started; the gateway's chat URL."""
    gateway_port = free_port()
    home.paths.orchestrator_file.write_text(json.dumps({"gateway": {"port": gateway_port}}))
    home.write_instance("busy", model=model, port=free_port(), binary=home.fake_binary(),
                        env={"FAKE_TOKEN_DELAY": "0.05"}, restart={"stop_grace_s": 20.0})
    home.start_daemon()
    home.ok("start", "busy")
    return f"http://127.0.0.1:{gateway_port}/v1/chat/completions"


def chat(url: str, model: str, *, max_tokens: int = 100, stream: bool = False) -> urllib.request.Request:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": max_tokens, "stream": stream}
    return urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})


def test_a_restart_lets_the_stream_in_flight_finish_before_the_process_stops(home: Home, model: Path) -> None:
    # 100 tokens at 50 ms (5 s) are streaming through the gateway when the user restarts the
    # instance. It turns `stopping` (the gateway sends it nothing new), the daemon waits for the
    # stream, then stops the process: the client gets every token and [DONE], where a stop at
    # once would cut the stream (llama-server itself does not exit on SIGTERM while a stream is
    # open: it waits for the kill, and the client gets an error either way).
    url = serve_busy(home, model)
    old_pid = home.status("busy").pid

    def ask() -> tuple[int, Any]:
        with urllib.request.urlopen(chat(url, "busy", max_tokens=2), timeout=60) as answer:
            return answer.status, json.loads(answer.read())

    with ThreadPoolExecutor(1) as pool, urllib.request.urlopen(chat(url, "busy", stream=True), timeout=60) as resp:
        assert resp.readline().startswith(b"data: ")  # the stream is under way
        restart = home.popen_cli("restart", "busy")
        home.wait_event("busy", lambda e: e.to_state == "stopping", what="the restart begins")
        draining = home.status("busy")
        assert draining.state == "stopping" and draining.pid == old_pid, draining  # waiting for the stream
        held = pool.submit(ask)  # a request meanwhile waits for the restarted process, as for a start
        rest = resp.read().decode()
        status, answer = held.result(timeout=60)
    assert status == 200 and answer["choices"][0]["message"]["content"], answer
    out, err = restart.communicate(timeout=60)
    assert restart.returncode == 0, out + err
    events = rest.count("data: ")
    assert rest.rstrip().endswith("data: [DONE]") and "error" not in rest, rest[-300:]
    assert events >= 100, f"{events} events after the first"
    stopped = home.wait_event("busy", lambda e: e.from_state == "stopping", what="the drained stop")
    assert "1 request(s) in flight finished" in stopped.reason and "stopped gracefully" in stopped.reason, stopped
    after = home.status("busy")
    assert after.state == "ready" and after.pid not in (None, old_pid), after


def test_rm_of_a_running_instance_lets_its_stream_finish_then_removes_it(home: Home, model: Path) -> None:
    # `rm` used to stop the process at once, cutting a stream in flight. Now it stops it as `down`
    # does: the instance leaves the gateway's rotation, its stream ends whole, then it is removed.
    url = serve_busy(home, model)
    pid = home.status("busy").pid
    assert pid is not None
    with urllib.request.urlopen(chat(url, "busy", stream=True), timeout=60) as resp:
        assert resp.readline().startswith(b"data: ")  # the stream is under way
        remove = home.popen_cli("rm", "busy", "-y")
        stopping = home.wait_event("busy", lambda e: e.to_state == "stopping", what="the removal begins")
        assert stopping.reason == "instance removed", stopping
        assert psutil.pid_exists(pid)  # still serving the stream
        assert "busy" not in {s.name for s in home.client().instances()}  # already out of the fleet
        rest = resp.read().decode()
    assert rest.rstrip().endswith("data: [DONE]") and "error" not in rest, rest[-300:]
    assert rest.count("data: ") >= 100
    out, err = remove.communicate(timeout=60)
    assert remove.returncode == 0 and "removed busy" in out, out + err
    assert "stopping busy first (requests in flight finish" in err  # why it takes a while
    wait_gone(pid)
    assert not (home.paths.instances_dir / "busy").exists()


def test_daemon_stop_while_rm_drains_leaves_no_process_behind(home: Home, model: Path) -> None:
    # `rm` takes the instance out of the fleet and waits for its stream; a `daemon stop` meanwhile
    # must still stop that process through its supervisor (it is not one of the fleet's instances
    # any more). It used to cancel that supervisor instead: the stop hung for 50 s, and `rm`
    # failed with "state database is closed".
    url = serve_busy(home, model)
    pid = home.status("busy").pid
    assert pid is not None
    with urllib.request.urlopen(chat(url, "busy", stream=True), timeout=60) as resp:
        assert resp.readline().startswith(b"data: ")
        remove = home.popen_cli("rm", "busy", "-y")
        home.wait_event("busy", lambda e: e.to_state == "stopping", what="the removal begins")
        stop = home.cli("daemon", "stop", timeout_s=60)
        assert stop.code == 0, str(stop)
        resp.read()  # the gateway ended the stream on its way out
    wait_gone(pid)
    out, err = remove.communicate(timeout=60)
    assert remove.returncode == 0 and "removed busy" in out, out + err
    assert not (home.paths.instances_dir / "busy").exists()


def test_max_loaded_starts_the_next_model_only_after_the_evicted_one_has_exited(home: Home, model: Path) -> None:
    # With max_loaded=1, a request for `b` evicts `a`. `a` takes 1.5 s to shut down (as a big model
    # freeing its GPU memory does); `b` used to be spawned at once, loading beside it. Now its
    # start waits for `a`'s exit: b's `starting` comes after a's `stopped` in the event log.
    gateway_port = free_port()
    home.paths.orchestrator_file.write_text(json.dumps({"gateway": {"port": gateway_port, "max_loaded": 1}}))
    for name in ("a", "b"):
        home.write_instance(name, model=model, port=free_port(), binary=home.fake_binary(), on_demand=True,
                            env={"FAKE_STOP_SECONDS": "1.5"})
    home.start_daemon()
    url = f"http://127.0.0.1:{gateway_port}/v1/chat/completions"

    def ask(name: str) -> int:
        with urllib.request.urlopen(chat(url, name, max_tokens=2), timeout=60) as answer:
            return int(answer.status)

    assert ask("a") == 200
    assert ask("b") == 200
    a_stopped = home.wait_event("a", lambda e: (e.from_state, e.to_state) == ("stopping", "stopped"),
                                what="a's process gone")
    b_started = next(e for e in home.events("b") if e.to_state == "starting")
    assert b_started.id > a_stopped.id, (home.events("a"), home.events("b"))
    assert home.status("a").state == "stopped" and home.status("b").state == "ready"


def test_min_residency_holds_the_next_model_until_the_loaded_one_has_been_up_that_long(
    home: Home, model: Path
) -> None:
    # Aider's main and weak model under max_loaded=1: `a` answers, then a request for `b` comes at
    # once. Without a residency `b` would evict `a` at once (and the next `a` request evict `b`).
    # With `a`'s min_residency_s of 2, the request for `b` is held until `a` has been ready 2 s.
    gateway_port = free_port()
    home.paths.orchestrator_file.write_text(json.dumps({"gateway": {"port": gateway_port, "max_loaded": 1}}))
    home.write_instance("a", model=model, port=free_port(), binary=home.fake_binary(), on_demand=True,
                        min_residency_s=2)
    home.write_instance("b", model=model, port=free_port(), binary=home.fake_binary(), on_demand=True)
    home.start_daemon()
    url = f"http://127.0.0.1:{gateway_port}/v1/chat/completions"
    for name in ("a", "b"):
        with urllib.request.urlopen(chat(url, name, max_tokens=2), timeout=60) as answer:
            assert answer.status == 200
    a_ready = next(e for e in home.events("a") if e.to_state == "ready")
    evicted = next(e for e in home.events("a") if e.to_state == "stopping")
    assert "evicted to start b" in evicted.reason
    assert evicted.at - a_ready.at >= 2.0 - 0.05, (a_ready, evicted)  # wall clock vs the daemon's monotonic
    assert home.status("b").state == "ready"


def test_preload_starts_on_demand_models_with_the_daemon_and_up_but_only_into_free_room(
    home: Home, model: Path
) -> None:
    # max_loaded=1 and two preloads: the daemon starts `a` (name order) and says `b` found no room.
    # A request for `c` evicts the idle `a`; `up` then preloads nothing, because a preload never
    # evicts what requests loaded.
    gateway_port = free_port()
    home.paths.orchestrator_file.write_text(json.dumps({"gateway": {"port": gateway_port, "max_loaded": 1}}))
    for name in ("a", "b", "c"):
        home.write_instance(name, model=model, port=free_port(), binary=home.fake_binary(), on_demand=True,
                            preload=name != "c")
    rows = json.loads(home.ok("ls", "--json").out)
    assert {r["name"]: r["start"] for r in rows} == {"a": "on-demand, preload", "b": "on-demand, preload",
                                                     "c": "on-demand"}
    home.start_daemon(autostart=True)
    home.wait_state("a", "ready")
    wait_until(lambda: "b not preloaded: gateway.max_loaded=1 leaves no free room" in home.paths.daemon_log.read_text(),
               10, message="the log says why b was not preloaded")
    assert home.status("b").state == home.status("c").state == "stopped"

    url = f"http://127.0.0.1:{gateway_port}/v1/chat/completions"
    with urllib.request.urlopen(chat(url, "c", max_tokens=2), timeout=60) as answer:
        assert answer.status == 200
    home.wait_state("a", "stopped")
    starts_of_a = len(_starts(home, "a"))
    home.ok("up")
    assert (home.status("a").state, home.status("c").state) == ("stopped", "ready")
    assert len(_starts(home, "a")) == starts_of_a  # not started, not even for a moment
    home.ok("down")
    home.ok("up")  # the room is free again: `up` preloads `a`, and waits until it is ready
    assert home.status("a").state == "ready" and home.status("b").state == "stopped"


def test_gateway_settings_and_a_rotated_keys_file_apply_on_the_next_command_without_a_restart(
    home: Home, model: Path, tmp_path: Path
) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("old-key\n")
    port = free_port()
    settings = {"gateway": {"port": port, "api_keys_file": str(keys)}}
    home.paths.orchestrator_file.write_text(json.dumps(settings))
    home.write_instance("busy", model=model, port=free_port(), binary=home.fake_binary())
    home.start_daemon()
    home.ok("start", "busy")
    pid = home.status("busy").pid
    url = f"http://127.0.0.1:{port}/v1/chat/completions"

    def status(key: str) -> int:
        request = chat(url, "busy", max_tokens=2)
        request.add_header("Authorization", f"Bearer {key}")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as refused:
            return refused.code

    assert status("old-key") == 200
    keys.write_text("new-key\n")  # a leaked key rotated: the next command applies it
    home.ok("up")
    assert (status("old-key"), status("new-key")) == (401, 200)
    home.paths.orchestrator_file.write_text("{broken")  # a broken file keeps the running settings
    assert home.cli("up").code == 2
    assert status("new-key") == 200
    home.paths.orchestrator_file.write_text(json.dumps({"gateway": {**settings["gateway"], "port": free_port()}}))
    home.ok("up")  # a new port needs a restart: said in the log, the old one keeps serving
    assert status("new-key") == 200
    assert "gateway.port changed in orchestrator.json: only a daemon restart applies it" in \
        home.paths.daemon_log.read_text()
    assert home.status("busy").pid == pid  # no instance was restarted for any of it


def serve_failing(home: Home, model: Path, failing: str, env: dict[str, str] | None = None, **extra: Any) -> str:
    """A daemon whose gateway serves `sick`, a fake whose /health passes while completions with
    `failing` in their body answer 500, already started; the gateway's chat URL."""
    gateway_port = free_port()
    home.paths.orchestrator_file.write_text(json.dumps({"gateway": {"port": gateway_port}}))
    home.write_instance("sick", model=model, port=free_port(), binary=home.fake_binary(),
                        env={"FAKE_FAIL_COMPLETIONS": failing, **(env or {})}, **extra)
    home.start_daemon()
    home.ok("start", "sick")
    return f"http://127.0.0.1:{gateway_port}/v1/chat/completions"


def fail_three_times(url: str, content: str) -> None:
    for _ in range(3):
        body = {"model": "sick", "messages": [{"role": "user", "content": content}], "max_tokens": 2}
        request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(request, timeout=30)
        assert failed.value.code == 500 and b"CUDA error" in failed.value.read()


def test_requests_failing_while_health_passes_restart_the_instance_once_a_canary_fails_too(
    home: Home, model: Path
) -> None:
    # hermes-agent#104050 / llama-swap#125: /health answers 200 while every completion fails. The
    # health probes never see it and the deep probe is off (the default); the gateway's requests do.
    url = serve_failing(home, model, "*")
    before = home.status("sick")
    fail_three_times(url, "hi")
    unhealthy = home.wait_event("sick", lambda e: e.to_state == "unhealthy", what="marked unhealthy")
    assert unhealthy.reason.startswith(
        "3 gateway requests in a row failed (the last: it answered HTTP 500: CUDA error: an illegal memory access "
        "was encountered), and a one-token request failed too: HTTP 500"), unhealthy
    after = wait_until(lambda: (s := home.status("sick")).state == "ready" and s.pid != before.pid and s, 30, 0.05,
                       "sick restarted")
    assert after.restarts == before.restarts + 1 and "a one-token request failed" in (after.last_error or ""), after


def test_requests_failing_on_their_own_prompts_leave_a_working_instance_running(home: Home, model: Path) -> None:
    # The same three 500s, for a prompt this server chokes on: the canary passes, so nothing restarts.
    url = serve_failing(home, model, "poison")
    before = home.status("sick")
    fail_three_times(url, "poison")
    kept = home.wait_event("sick", lambda e: "kept running" in e.reason, what="the canary's verdict")
    assert kept.from_state == kept.to_state == "ready", kept
    assert kept.reason == ("3 gateway requests in a row failed (the last: it answered HTTP 500: CUDA error: an "
                           "illegal memory access was encountered), but a one-token request passed: kept running")
    after = home.status("sick")
    assert after.state == "ready" and after.pid == before.pid and after.restarts == before.restarts, after
    assert after.ready_at == before.ready_at, (before, after)  # the same process: its uptime goes on
    assert not any(e.to_state == "unhealthy" for e in home.events("sick"))


def test_a_canary_waiting_behind_busy_slots_is_no_verdict(home: Home, model: Path) -> None:
    # One slot, busy with a 20 s stream, while three poison requests fail at once: the canary queues
    # behind the stream and gets no answer in its 5 s. A busy server is not a broken one (a restart
    # would cut the healthy stream), so nothing is restarted.
    url = serve_failing(home, model, "poison", {"FAKE_TOKEN_DELAY": "0.05"}, args=["-np", "1"])
    before = home.status("sick")
    with urllib.request.urlopen(chat(url, "sick", max_tokens=400, stream=True), timeout=60) as resp:
        assert resp.readline().startswith(b"data: ")  # the stream holds the only slot
        fail_three_times(url, "poison")
        kept = home.wait_event("sick", lambda e: "kept running" in e.reason, what="the canary's verdict")
    assert "a one-token request got no answer within 5 s while 1 other request(s) held slots" in kept.reason, kept
    after = home.status("sick")
    assert after.state == "ready" and after.pid == before.pid and after.restarts == before.restarts, after


def test_a_canary_waiting_behind_a_direct_clients_stream_is_no_verdict(home: Home, model: Path) -> None:
    # The same, with the stream sent to llama-server directly (a client that bypasses the gateway):
    # the gateway counts nothing in flight, so /slots is asked, and its busy slot is the answer.
    url = serve_failing(home, model, "poison", {"FAKE_TOKEN_DELAY": "0.05"}, args=["-np", "1"])
    before = home.status("sick")
    direct = f"http://127.0.0.1:{before.port}/v1/chat/completions"
    with urllib.request.urlopen(chat(direct, "sick", max_tokens=400, stream=True), timeout=60) as resp:
        assert resp.readline().startswith(b"data: ")  # the stream holds the only slot
        fail_three_times(url, "poison")
        kept = home.wait_event("sick", lambda e: "kept running" in e.reason, what="the canary's verdict")
    assert ("a one-token request got no answer within 5 s while 1 slot(s) were busy with requests that did not "
            "come through the gateway (busy, not judged)") in kept.reason, kept
    after = home.status("sick")
    assert after.state == "ready" and after.pid == before.pid and after.restarts == before.restarts, after
