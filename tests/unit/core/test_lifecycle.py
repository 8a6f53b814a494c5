"""The state machine as scenario tables: (event, expected state, expected actions), fake clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from llama_orchestrator.config.models import HealthPolicy, RestartPolicy
from llama_orchestrator.core import lifecycle as lc
from llama_orchestrator.core.backoff import restart_delay
from llama_orchestrator.core.classify import Failure, FailureKind, classify_exit, is_loading_progress
from llama_orchestrator.core.states import InstanceState as S

POLICY = lc.Policy(HealthPolicy(), RestartPolicy())
CRASH = lc.Exited("killed by signal 6", None, Failure(FailureKind.UNKNOWN, "abort"))
MODEL_ERROR = lc.Exited("exit code 1", 1, Failure(FailureKind.MODEL_LOAD, "error loading model"))


def run(steps, rt=None, policy=POLICY):
    """Replay (time, event, expected state, expected actions) rows; return the final runtime."""
    rt = rt or lc.Runtime()
    for now, event, state, actions in steps:
        decision = lc.decide(rt, event, policy, now, jitter_draw=0.5)
        rt = decision.runtime
        assert rt.state is state, f"after {event} at t={now}: {rt.state} (reason {rt.reason!r}), wanted {state}"
        assert tuple(type(a) for a in decision.actions) == actions, f"after {event}: {decision.actions}"
    return rt


def ready_runtime(now: float = 0.0) -> lc.Runtime:
    return run([(now, lc.Start(), S.STARTING, (lc.Spawn,)), (now + 1, lc.Probe(True), S.READY, (lc.RecordLoadTime,))])


def test_start_to_ready_records_load_time() -> None:
    rt = lc.decide(lc.Runtime(), lc.Start(), POLICY, 10.0).runtime
    decision = lc.decide(rt, lc.Probe(True), POLICY, 12.5)
    assert decision.runtime.state is S.READY
    assert decision.actions == (lc.RecordLoadTime(2.5),)


def test_loading_probes_keep_starting_until_ready() -> None:
    run([
        (0, lc.Start(), S.STARTING, (lc.Spawn,)),
        (0.2, lc.Probe(False, "503 Loading model"), S.STARTING, ()),
        (0.4, lc.Probe(False, "503 Loading model"), S.STARTING, ()),
        (0.6, lc.Probe(True), S.READY, (lc.RecordLoadTime,)),
    ])


def test_crash_loop_backoff_curve_first_restart_at_once() -> None:
    rt = ready_runtime()
    delays = []
    now = 10.0
    for _ in range(7):
        decision = lc.decide(rt, CRASH, POLICY, now, jitter_draw=0.5)
        rt = decision.runtime
        if rt.state is S.BACKOFF:
            delays.append(rt.next_start_at - now)
            now = rt.next_start_at
            rt = lc.decide(rt, lc.Tick(), POLICY, now).runtime
        else:
            delays.append(0.0)
        assert rt.state is S.STARTING
        rt = lc.decide(rt, lc.Probe(True), POLICY, now + 1).runtime
        now += 2
    assert delays == pytest.approx([0, 2, 4, 8, 16, 32, 64])
    assert rt.restarts == 7


def test_backoff_caps_and_jitter_bounds() -> None:
    assert restart_delay(20, 2, 300, 0.5) == pytest.approx(300)
    assert restart_delay(3, 2, 300, 0.0) == pytest.approx(3.6)
    assert restart_delay(3, 2, 300, 0.999999) == pytest.approx(4.4, rel=1e-5)


def test_crash_counter_resets_after_ten_minutes_ready() -> None:
    rt = ready_runtime()
    rt = replace(rt, crash_count=4)
    rt = lc.decide(rt, CRASH, POLICY, 700.0).runtime  # ready since t=1, so 699 s > 600 s
    assert rt.state is S.STARTING and rt.crash_count == 1


def test_model_load_error_fails_after_one_attempt() -> None:
    rt = run([(0, lc.Start(), S.STARTING, (lc.Spawn,)), (1, MODEL_ERROR, S.FAILED, ())])
    assert "model-load-error" in rt.last_error
    # Nothing more happens on ticks: failed is left only by a user command.
    run([(100, lc.Tick(), S.FAILED, ())], rt)
    run([(101, lc.Start(), S.STARTING, (lc.Spawn,))], rt)
    # a user's stop (`down`) acknowledges it: stopped, with the error kept for `ps -a`...
    stopped = run([(102, lc.Stop("down requested"), S.STOPPED, ())], rt)
    assert stopped.last_error == rt.last_error and "was failed" in stopped.reason
    # ...while the daemon shutting down leaves it failed for the next daemon to show
    run([(103, lc.Stop("daemon shutting down", shutdown=True), S.FAILED, ())], rt)


def test_unknown_start_failures_fail_after_five_attempts() -> None:
    unknown = lc.Exited("exit code 1", 1, Failure(FailureKind.UNKNOWN, "boom"))
    rt = lc.decide(lc.Runtime(), lc.Start(), POLICY, 0).runtime
    now = 0.0
    states = []
    for _ in range(5):
        rt = lc.decide(rt, unknown, POLICY, now).runtime
        states.append(rt.state)
        if rt.state is S.BACKOFF:
            now = rt.next_start_at
            rt = lc.decide(rt, lc.Tick(), POLICY, now).runtime
    assert states == [S.STARTING, S.BACKOFF, S.BACKOFF, S.BACKOFF, S.FAILED]
    assert "5 start(s)" in rt.last_error


def test_start_deadline_extends_with_progress_then_times_out() -> None:
    policy = lc.Policy(HealthPolicy(start_timeout_s=10), RestartPolicy())
    rt = run([
        (0, lc.Start(), S.STARTING, (lc.Spawn,)),
        (8, lc.Progress(), S.STARTING, ()),
        (12, lc.Tick(), S.STARTING, ()),  # 12 < 8 + 10: still loading
        (18, lc.Tick(), S.STOPPING, (lc.StopProcess,)),
    ], policy=policy)
    assert rt.after_stop == "start-failed"
    rt = lc.decide(rt, lc.Stopped("killed"), policy, 19).runtime
    assert rt.state is S.STARTING and rt.start_failures == 1  # first retry at once


def test_unhealthy_after_threshold_then_restarted() -> None:
    rt = ready_runtime()
    rt = run([
        (11, lc.Probe(False, "timeout"), S.READY, ()),
        (21, lc.Probe(False, "timeout"), S.READY, ()),
        (31, lc.Probe(False, "timeout"), S.UNHEALTHY, ()),
    ], rt)
    assert lc.next_wake(rt, POLICY) == 0.0
    rt = run([(31, lc.Tick(), S.STOPPING, (lc.StopProcess,)), (32, lc.Stopped("killed"), S.STARTING, (lc.Spawn,))], rt)
    assert rt.restarts == 1


def test_a_start_after_down_begins_a_new_run_without_the_last_ones_restarts_and_error() -> None:
    rt = ready_runtime()
    rt = run([(10, CRASH, S.STARTING, (lc.Spawn,)), (11, lc.Probe(True), S.READY, (lc.RecordLoadTime,))], rt)
    assert rt.restarts == 1 and "signal 6" in (rt.last_error or "")
    rt = run([(12, lc.Stop("down requested"), S.STOPPING, (lc.StopProcess,)),
              (13, lc.Stopped("exited"), S.STOPPED, ())], rt)
    assert rt.restarts == 1 and rt.last_error  # `ps -a` still says how the last run went
    assert rt.reason == "exited"  # as the stop said it: "stopped" is the state's word already
    rt = run([(14, lc.Start("up requested"), S.STARTING, (lc.Spawn,))], rt)
    assert rt.restarts == 0 and rt.last_error is None


def test_unhealthy_recovers_when_restart_policy_is_no() -> None:
    policy = lc.Policy(HealthPolicy(failure_threshold=1), RestartPolicy(policy="no"))
    rt = run([(0, lc.Start(), S.STARTING, (lc.Spawn,)), (1, lc.Probe(True), S.READY, (lc.RecordLoadTime,)),
              (2, lc.Probe(False), S.UNHEALTHY, ()), (3, lc.Tick(), S.UNHEALTHY, ()),
              (4, lc.Probe(True), S.READY, ())], policy=policy)
    assert rt.probe_failures == 0


def test_stop_while_loading_is_a_kill_and_start_during_stop_waits() -> None:
    rt = lc.decide(lc.Runtime(), lc.Start(), POLICY, 0).runtime
    decision = lc.decide(rt, lc.Stop(), POLICY, 1)
    assert decision.actions == (lc.StopProcess(kill=True),)
    rt = run([(1.5, lc.Start(), S.STOPPING, ()), (2, lc.Stopped("killed"), S.STARTING, (lc.Spawn,))],
             decision.runtime)
    assert rt.desired_up


def test_stop_when_ready_is_graceful_and_ends_stopped() -> None:
    rt = ready_runtime()
    decision = lc.decide(rt, lc.Stop(), POLICY, 5)
    assert decision.actions == (lc.StopProcess(kill=False, drain=True),)  # requests in flight finish first
    run([(6, lc.Stopped("exit code 0"), S.STOPPED, ())], decision.runtime)


def test_restart_when_ready_stops_then_starts() -> None:
    rt = run([(5, lc.Restart(), S.STOPPING, (lc.StopProcess,))], ready_runtime())
    assert lc.decide(ready_runtime(), lc.Restart(), POLICY, 5).actions == (lc.StopProcess(kill=False, drain=True),)
    run([(6, lc.Stopped("exit code 0"), S.STARTING, (lc.Spawn,))], rt)


def test_only_a_ready_instance_drains_before_it_stops() -> None:
    unhealthy = run([(6, lc.Probe(False), S.READY, ()), (7, lc.Probe(False), S.READY, ()),
                     (8, lc.Probe(False), S.UNHEALTHY, ())], ready_runtime())
    # an unhealthy server may never finish what it holds; the restart it earns does not wait either
    assert lc.decide(unhealthy, lc.Restart(), POLICY, 9).actions == (lc.StopProcess(kill=False),)
    assert lc.decide(unhealthy, lc.Stop(), POLICY, 9).actions == (lc.StopProcess(kill=False),)
    assert lc.decide(unhealthy, lc.Tick(), POLICY, 9).actions == (lc.StopProcess(kill=False),)
    loading = lc.decide(lc.Runtime(), lc.Start(), POLICY, 0).runtime
    assert lc.decide(loading, lc.Restart(), POLICY, 1).actions == (lc.StopProcess(kill=True),)


def test_stop_during_backoff_cancels_the_restart() -> None:
    rt = lc.decide(ready_runtime(), CRASH, POLICY, 5).runtime
    rt = lc.decide(rt, CRASH if rt.state is S.BACKOFF else lc.Probe(True), POLICY, 6).runtime
    rt = lc.decide(rt, CRASH, POLICY, 7).runtime
    assert rt.state is S.BACKOFF
    run([(8, lc.Stop(), S.STOPPED, ()), (100, lc.Tick(), S.STOPPED, ())], rt)


def test_clean_exit_with_on_failure_policy_stops() -> None:
    clean = lc.Exited("exit code 0", 0, Failure(FailureKind.UNKNOWN, ""))
    run([(5, clean, S.STOPPED, ())], ready_runtime())


def test_impostor_on_port_fails_the_instance() -> None:
    rt = lc.decide(lc.Runtime(), lc.Start(), POLICY, 0).runtime
    rt = run([(1, lc.Impostor("port answered by pid 9"), S.STOPPING, (lc.StopProcess,)),
              (2, lc.Stopped("killed"), S.FAILED, ())], rt)
    assert "pid 9" in rt.last_error


def test_reconciling_adopts_or_starts_or_stays_stopped() -> None:
    rec = lc.Runtime(state=S.RECONCILING)
    run([(0, lc.Adopted(42), S.STARTING, ()), (0.1, lc.Probe(True), S.READY, (lc.RecordLoadTime,))], rec)
    run([(0, lc.NotAdopted("exited-while-unsupervised", True), S.STARTING, (lc.Spawn,))], rec)
    run([(0, lc.NotAdopted("not running", False), S.STOPPED, ())], rec)


def test_ignored_events_change_nothing() -> None:
    rt = lc.Runtime()
    for event in (lc.Probe(True), lc.Tick(), CRASH, lc.Stopped("x"), lc.Progress(), lc.Stop()):
        assert lc.decide(rt, event, POLICY, 1).runtime.state is S.STOPPED


@pytest.mark.parametrize(
    ("lines", "kind"),
    [
        (["llama_model_load: error loading model: failed to open x", "main: exiting due to model loading error"],
         FailureKind.MODEL_LOAD),
        (["couldn't bind HTTP server socket, hostname: 127.0.0.1, port: 8001", "exiting due to HTTP server error"],
         FailureKind.PORT_IN_USE),
        (["error: invalid argument: --bogus"], FailureKind.BAD_ARGUMENT),
        (["Segmentation fault"], FailureKind.UNKNOWN),
        ([], FailureKind.UNKNOWN),
    ],
)
def test_classify_exit_from_log_tail(lines: list[str], kind: FailureKind) -> None:
    failure = classify_exit(lines)
    assert failure.kind is kind
    if kind is FailureKind.MODEL_LOAD:
        assert "failed to open x" in failure.detail


def test_classify_prefers_the_line_that_says_why_without_log_prefix() -> None:
    failure = classify_exit([
        "0.00.008.192 E llama_model_load: error loading model: llama_model_loader: failed to load model from /m",
        "0.00.008.278 E gguf_init_from_reader: invalid magic characters: '?O?q', expected 'GGUF'",
        "0.00.008.653 E srv  llama_server: exiting due to model loading error",
    ])
    assert failure.detail == "gguf_init_from_reader: invalid magic characters: '?O?q', expected 'GGUF'"


def test_loading_progress_lines() -> None:
    assert is_loading_progress("llama_model_loader: loaded meta data with 20 key-value pairs")
    assert is_loading_progress(".......")
    assert not is_loading_progress("srv  log_server_r: request: GET /health 127.0.0.1 200")


def test_a_daemon_shutdown_stops_without_draining_and_leaves_nothing_to_resume() -> None:
    rt = ready_runtime()
    decision = lc.decide(rt, lc.Stop("daemon shutting down", shutdown=True), POLICY, 5)
    assert decision.actions == (lc.StopProcess(kill=False),)  # no drain: the gateway has stopped already
    rt = run([(6, lc.Stopped("exit code 0"), S.STOPPED, ())], decision.runtime)
    assert not rt.desired_up
    assert not lc.resumes_at_start(rt.state, rt.desired_up)  # only autostart brings it back
    user_stop = lc.decide(ready_runtime(), lc.Stop(), POLICY, 5).runtime
    assert not user_stop.desired_up


@pytest.mark.parametrize(("recorded", "desired_up", "resumed"), [
    (S.READY, True, True), (S.STARTING, True, True), (S.UNHEALTHY, True, True), (S.BACKOFF, True, True),
    (S.STOPPING, True, True), (S.RECONCILING, True, True),  # the last daemon ended without stopping it
    (S.STOPPED, True, False), (S.FAILED, True, False),  # it stopped it (a state.db from before desire was cleared)
    (S.READY, False, False), (S.STOPPED, False, False),
])
def test_a_daemon_resumes_only_what_the_last_one_left_meant_to_run(
    recorded: S, desired_up: bool, resumed: bool
) -> None:
    assert lc.resumes_at_start(recorded, desired_up) is resumed
    event = lc.nothing_to_adopt(recorded, lc.resumes_at_start(recorded, desired_up))
    assert event.should_run is resumed
    if resumed:  # said as why it starts, not as an error
        assert event.reason == f"{recorded.value} when the last daemon ended without stopping it: starting it again"
    else:
        assert event.reason == f"{recorded.value} when the last daemon ended"
    assert lc.nothing_to_adopt(None, False) == lc.NotAdopted("no process recorded", False)


def test_a_failed_canary_makes_a_ready_instance_unhealthy_and_a_passed_one_is_only_noted() -> None:
    rt = ready_runtime()
    kept = lc.decide(rt, lc.Canary(True, "3 gateway requests in a row failed ..., but ... passed"), POLICY, 5)
    assert kept.runtime.state is S.READY and kept.runtime.reason.endswith("passed") and not kept.actions
    assert kept.runtime.last_error is None
    rt = run([(6, lc.Canary(False, "3 failed, and a one-token request failed too"), S.UNHEALTHY, ())], rt)
    assert rt.last_error == "3 failed, and a one-token request failed too"
    rt = run([(6, lc.Tick(), S.STOPPING, (lc.StopProcess,)), (7, lc.Stopped("stopped"), S.STARTING, (lc.Spawn,))], rt)
    assert rt.restarts == 1


def test_a_canary_verdict_changes_nothing_unless_ready() -> None:
    starting = lc.decide(lc.Runtime(), lc.Start(), POLICY, 0).runtime
    assert lc.decide(starting, lc.Canary(False, "late"), POLICY, 1).runtime is starting
