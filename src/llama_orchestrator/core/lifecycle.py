"""The instance state machine: `decide(runtime, event, policy, now) -> Decision` (pure).

The supervisor owns one `Runtime` per instance, feeds every command, probe result, process exit
and timer tick through `decide`, stores the new runtime and carries out the actions. Time
(`now`, monotonic seconds) and the jitter draw come in as arguments, so every path is tested
with a fake clock. The events and actions are defined in `core.lifecycle_events` and re-exported here.

    state        event                         → state         actions
    stopped      Start                         → starting      Spawn
    failed       Start / Restart               → starting      Spawn           (counters reset)
    backoff      Start / Restart / Tick(due)   → starting      Spawn
    starting     Spawned                       → starting      (start deadline armed)
    starting     SpawnFailed(permanent)        → failed
    starting     Probe(ok)                     → ready         RecordLoadTime
    starting     Progress                      → starting      (deadline extended)
    starting     Tick(deadline passed)         → stopping      StopProcess(kill)   then start failure
    starting     Exited                        → failed (classified permanent, or 5th failure)
                                               | backoff | starting (first retry at once)
    starting     Impostor                      → stopping      StopProcess(kill)   then failed
    ready        Probe(fail) × threshold       → unhealthy
    ready        Canary(fail)                  → unhealthy     (gateway requests failed, so did a canary)
    ready        Canary(ok)                    → ready         (recorded: the failures were the requests')
    unhealthy    Probe(ok)                     → ready
    unhealthy    Tick (restart policy allows)  → stopping      StopProcess         then crash path
    ready|unh.   Exited                        → backoff | starting | stopped | failed  (restart policy)
    any w/ proc  Stop                          → stopping      StopProcess(kill if still loading,
                                                                           drain if ready)
    any w/ proc  Restart                       → stopping      StopProcess(drain if ready) then starting
    stopping     Stopped                       → stopped | starting | backoff | failed (per `after_stop`)
    stopping     Start                         → stopping      (starts once the stop completes)
    backoff      Stop                          → stopped
    failed       Stop (a user's, not shutdown) → stopped       (last_error kept)
    reconciling  Adopted                       → starting      (the next good probe makes it ready)
    reconciling  NotAdopted(run)               → starting      Spawn           (`resumes_at_start`)
    reconciling  NotAdopted(not run)           → stopped
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from llama_orchestrator.config.models import HealthPolicy, RestartPolicy
from llama_orchestrator.core.backoff import restart_delay
from llama_orchestrator.core.lifecycle_events import (
    Action as Action,
    Adopted as Adopted,
    Canary as Canary,
    Event as Event,
    Exited as Exited,
    Impostor as Impostor,
    NotAdopted as NotAdopted,
    Probe as Probe,
    Progress as Progress,
    RecordLoadTime as RecordLoadTime,
    Restart as Restart,
    Spawn as Spawn,
    Spawned as Spawned,
    SpawnFailed as SpawnFailed,
    Start as Start,
    Stop as Stop,
    Stopped as Stopped,
    StopProcess as StopProcess,
    Tick as Tick,
)
from llama_orchestrator.core.states import PROCESS_STATES, InstanceState

S = InstanceState
AfterStop = Literal["stop", "restart", "start-failed", "crash", "failed"]


# ---- state ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Runtime:
    """Everything the state machine remembers about one instance (monotonic times)."""

    state: InstanceState = S.STOPPED
    reason: str = ""
    desired_up: bool = False
    restarts: int = 0
    crash_count: int = 0
    start_failures: int = 0
    probe_failures: int = 0
    started_at: float | None = None
    ready_at: float | None = None
    last_progress_at: float | None = None
    next_start_at: float | None = None
    after_stop: AfterStop = "stop"
    pending_error: str | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    health: HealthPolicy
    restart: RestartPolicy


@dataclass(frozen=True, slots=True)
class Decision:
    runtime: Runtime
    actions: tuple[Action, ...] = ()


def _to(rt: Runtime, state: InstanceState, reason: str, **changes: object) -> Runtime:
    return replace(rt, state=state, reason=reason, **changes)  # type: ignore[arg-type]


def _spawn(rt: Runtime, reason: str, now: float) -> Decision:
    started = _to(
        rt,
        S.STARTING,
        reason,
        started_at=now,
        last_progress_at=now,
        ready_at=None,
        probe_failures=0,
        next_start_at=None,
        after_stop="stop",
    )
    return Decision(started, (Spawn(),))


def start_deadline(rt: Runtime, policy: Policy) -> float | None:
    """When a start that shows no loading progress is given up (it moves with each progress line)."""
    if rt.state is not S.STARTING or rt.started_at is None:
        return None
    since = max(rt.started_at, rt.last_progress_at or rt.started_at)
    return since + policy.health.start_timeout_s


def next_wake(rt: Runtime, policy: Policy) -> float | None:
    """The next time the supervisor must send a Tick, or None when nothing is timed."""
    if rt.state is S.BACKOFF:
        return rt.next_start_at
    if rt.state is S.STARTING:
        return start_deadline(rt, policy)
    if rt.state is S.UNHEALTHY and policy.restart.policy != "no":
        return 0.0  # at once: an unhealthy instance is restarted right after it is marked so
    return None


def resumes_at_start(recorded: InstanceState, desired_up: bool) -> bool:
    """Whether a daemon starting now runs an instance whose process is gone, from the state the last
    daemon recorded. Only a daemon that ended without stopping it (killed, crashed, or `daemon stop
    --keep-instances` and the process died since) leaves one meant to run in a state other than
    stopped or failed; a clean `daemon stop` leaves it stopped, and autostart alone decides then."""
    return desired_up and recorded not in (S.STOPPED, S.FAILED)


def nothing_to_adopt(recorded: InstanceState | None, resume: bool) -> NotAdopted:
    """Reconciling an instance with no process recorded: the event, saying why it starts or not."""
    if recorded is None:
        return NotAdopted("no process recorded", resume)
    if resume:
        return NotAdopted(f"{recorded.value} when the last daemon ended without stopping it: starting it again", True)
    return NotAdopted(f"{recorded.value} when the last daemon ended", False)


def decide(rt: Runtime, event: Event, policy: Policy, now: float, jitter_draw: float = 0.5) -> Decision:
    """Apply one event to one instance's runtime; return the new runtime and what to do."""
    state = rt.state
    if isinstance(event, Start | Restart):
        return _on_start(rt, event, now)
    if isinstance(event, Stop):
        return _on_stop(rt, event.reason, shutdown=event.shutdown)
    if isinstance(event, Adopted) and state is S.RECONCILING:
        # RECONCILING -> STARTING: the child lives on; the next good probe makes it ready.
        return Decision(
            _to(
                rt,
                S.STARTING,
                f"adopted running pid {event.pid}",
                desired_up=True,
                started_at=now,
                last_progress_at=now,
                probe_failures=0,
            )
        )
    if isinstance(event, NotAdopted) and state is S.RECONCILING:
        if event.should_run:
            return _spawn(replace(rt, desired_up=True, last_error=rt.last_error), event.reason, now)
        return Decision(_to(rt, S.STOPPED, event.reason))
    if isinstance(event, Spawned) and state is S.STARTING:
        return Decision(replace(rt, reason=f"spawned pid {event.pid}", started_at=now, last_progress_at=now))
    if isinstance(event, SpawnFailed) and state is S.STARTING:
        if event.permanent:
            return Decision(_to(rt, S.FAILED, event.reason, last_error=event.reason))
        return _start_failed(rt, event.reason, policy, now, jitter_draw)
    if isinstance(event, Progress) and state is S.STARTING:
        return Decision(replace(rt, last_progress_at=now))
    if isinstance(event, Probe):
        return _on_probe(rt, event, policy, now)
    if isinstance(event, Canary) and state is S.READY:
        if event.ok:
            return Decision(replace(rt, reason=event.detail))
        return Decision(_to(rt, S.UNHEALTHY, event.detail, last_error=event.detail))
    if isinstance(event, Impostor) and state in PROCESS_STATES and state is not S.STOPPING:
        return Decision(
            _to(rt, S.STOPPING, event.detail, after_stop="failed", pending_error=event.detail),
            (StopProcess(kill=True),),
        )
    if isinstance(event, Exited):
        return _on_exit(rt, event, policy, now, jitter_draw)
    if isinstance(event, Stopped) and state is S.STOPPING:
        return _on_stopped(rt, event, policy, now, jitter_draw)
    if isinstance(event, Tick):
        return _on_tick(rt, policy, now)
    return Decision(rt)


def _on_start(rt: Runtime, event: Start | Restart, now: float) -> Decision:
    state = rt.state
    wanted = replace(rt, desired_up=True)
    if state in (S.STOPPED, S.FAILED, S.BACKOFF, S.RECONCILING):
        if state in (S.STOPPED, S.FAILED):
            # a new run, as `docker start` begins one: its restarts and errors are what `ps` shows
            # from now on, not the last run's (those stay in `events`)
            wanted = replace(wanted, restarts=0, last_error=None)
        if state is S.FAILED:
            # FAILED -> STARTING: only a user command leaves failed; it gets a fresh set of attempts.
            wanted = replace(wanted, start_failures=0, crash_count=0)
        return _spawn(wanted, event.reason, now)
    if state is S.STOPPING:
        return Decision(replace(wanted, after_stop="restart"))
    if isinstance(event, Restart):
        # READY/UNHEALTHY/STARTING -> STOPPING, then STARTING once the old process is gone.
        stop = StopProcess(kill=state is S.STARTING, drain=state is S.READY)
        return Decision(_to(wanted, S.STOPPING, event.reason, after_stop="restart"), (stop,))
    return Decision(wanted)


def _on_stop(rt: Runtime, reason: str, *, shutdown: bool = False) -> Decision:
    state = rt.state
    down = replace(rt, desired_up=False)  # a daemon's own stop too: the next daemon resumes nothing
    if state in (S.STARTING, S.READY, S.UNHEALTHY):
        # llama-server installs its signal handlers only after loading: stopping a loading one is a kill.
        # The daemon's own shutdown does not drain: its gateway has stopped already.
        stop = StopProcess(kill=state is S.STARTING, drain=state is S.READY and not shutdown)
        return Decision(_to(down, S.STOPPING, reason, after_stop="stop"), (stop,))
    if state is S.STOPPING:
        return Decision(replace(down, after_stop="stop"))
    if state in (S.BACKOFF, S.RECONCILING):
        return Decision(_to(down, S.STOPPED, reason, next_start_at=None))
    if state is S.FAILED and not shutdown:
        # FAILED -> STOPPED: the user has seen the failure and wants it down; last_error stays.
        return Decision(_to(down, S.STOPPED, f"{reason} (was failed)"))
    return Decision(down)


def _on_probe(rt: Runtime, event: Probe, policy: Policy, now: float) -> Decision:
    state = rt.state
    if state is S.STARTING and event.ok:
        load_s = now - rt.started_at if rt.started_at is not None else 0.0
        ready = _to(rt, S.READY, "health check passed", ready_at=now, probe_failures=0, start_failures=0)
        return Decision(ready, (RecordLoadTime(load_s),))
    if state not in (S.READY, S.UNHEALTHY):
        return Decision(rt)
    if event.ok:
        reset = rt.ready_at is not None and now - rt.ready_at >= policy.restart.reset_after_s
        crash_count = 0 if reset else rt.crash_count
        if state is S.UNHEALTHY:
            return Decision(_to(rt, S.READY, "health check passed again", probe_failures=0, crash_count=crash_count))
        return Decision(replace(rt, probe_failures=0, crash_count=crash_count))
    failures = rt.probe_failures + 1
    if state is S.READY and failures >= policy.health.failure_threshold:
        reason = f"{failures} failed health checks in a row: {event.detail}"
        return Decision(_to(rt, S.UNHEALTHY, reason, probe_failures=failures, last_error=reason))
    return Decision(replace(rt, probe_failures=failures))


def _on_exit(rt: Runtime, event: Exited, policy: Policy, now: float, jitter_draw: float) -> Decision:
    state = rt.state
    if state is S.STARTING:
        failure = event.failure
        if failure.kind.is_permanent:
            reason = f"{failure.kind.value}: {failure.detail}"
            return Decision(_to(rt, S.FAILED, reason, last_error=reason))
        return _start_failed(
            rt, f"exited during start ({event.description}): {failure.detail}", policy, now, jitter_draw
        )
    if state not in (S.READY, S.UNHEALTHY):
        return Decision(rt)
    return _crashed(rt, f"exited ({event.description})", event.code, policy, now, jitter_draw)


def _crashed(rt: Runtime, reason: str, code: int | None, policy: Policy, now: float, jitter_draw: float) -> Decision:
    mode = policy.restart.policy
    if mode == "no" or (mode == "on-failure" and code == 0):
        final = S.STOPPED if code == 0 else S.FAILED
        return Decision(_to(rt, final, reason, desired_up=False, last_error=None if code == 0 else reason))
    crash_count = rt.crash_count + 1
    if rt.ready_at is not None and now - rt.ready_at >= policy.restart.reset_after_s:
        crash_count = 1  # it ran long enough: this crash starts a new series
    delay = restart_delay(crash_count, policy.restart.backoff_initial_s, policy.restart.backoff_max_s, jitter_draw)
    crashed = replace(rt, crash_count=crash_count, restarts=rt.restarts + 1, last_error=reason)
    if delay <= 0:
        return _spawn(crashed, f"{reason}; restarting at once", now)
    return Decision(_to(crashed, S.BACKOFF, f"{reason}; restart in {delay:.1f} s", next_start_at=now + delay))


def _start_failed(rt: Runtime, reason: str, policy: Policy, now: float, jitter_draw: float) -> Decision:
    failures = rt.start_failures + 1
    if policy.restart.policy == "no" or failures >= policy.restart.max_start_failures:
        final = f"{reason} (failed {failures} start(s) in a row)"
        return Decision(_to(rt, S.FAILED, final, start_failures=failures, last_error=final))
    delay = restart_delay(failures, policy.restart.backoff_initial_s, policy.restart.backoff_max_s, jitter_draw)
    failed = replace(rt, start_failures=failures, restarts=rt.restarts + 1, last_error=reason)
    if delay <= 0:
        return _spawn(failed, f"{reason}; retrying at once", now)
    return Decision(_to(failed, S.BACKOFF, f"{reason}; retry in {delay:.1f} s", next_start_at=now + delay))


def _on_stopped(rt: Runtime, event: Stopped, policy: Policy, now: float, jitter_draw: float) -> Decision:
    after = rt.after_stop
    if after == "failed":
        error = rt.pending_error or event.description
        return Decision(_to(rt, S.FAILED, error, last_error=error, pending_error=None, desired_up=False))
    if after == "start-failed":
        return _start_failed(
            replace(rt, pending_error=None), rt.pending_error or "start failed", policy, now, jitter_draw
        )
    if after == "crash":
        return _crashed(replace(rt, pending_error=None), rt.pending_error or "crashed", None, policy, now, jitter_draw)
    if after == "restart":
        return _spawn(rt, f"restarting ({event.description})", now)
    return Decision(_to(rt, S.STOPPED, event.description, started_at=None, ready_at=None))  # ("stopped gracefully, …")


def _on_tick(rt: Runtime, policy: Policy, now: float) -> Decision:
    state = rt.state
    if state is S.BACKOFF and rt.next_start_at is not None and now >= rt.next_start_at:
        # BACKOFF -> STARTING
        return _spawn(rt, "backoff elapsed", now)
    deadline = start_deadline(rt, policy)
    if state is S.STARTING and deadline is not None and now >= deadline:
        reason = f"start-timeout: not ready after {policy.health.start_timeout_s:g} s without loading progress"
        return Decision(
            _to(rt, S.STOPPING, reason, after_stop="start-failed", pending_error=reason), (StopProcess(kill=True),)
        )
    if state is S.UNHEALTHY and policy.restart.policy != "no":
        # UNHEALTHY -> STOPPING -> (crash path): a wedged server does not heal by itself.
        return Decision(
            _to(rt, S.STOPPING, "restarting unhealthy instance", after_stop="crash", pending_error=rt.last_error),
            (StopProcess(kill=False),),
        )
    return Decision(rt)
