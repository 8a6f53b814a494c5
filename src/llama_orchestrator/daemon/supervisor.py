"""`InstanceSupervisor`: one asyncio task per instance, the only writer of that instance's state.

Commands, probe results, process exits, log progress and timer ticks all arrive as events on
the supervisor's queue; `core.lifecycle.decide` chooses the next state and the actions, and this
module carries the actions out (spawn, stop, record). Events from a child that has since been
replaced carry an old generation number and are dropped, so a late exit can never touch the new
process. `status()` is a snapshot: it may be stale the moment it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from llama_orchestrator.config.argv import LaunchCommand, build_command
from llama_orchestrator.config.drift import ConfigDrift, RunningCommand
from llama_orchestrator.config.models import InstanceConfig
from llama_orchestrator.config.paths import HomePaths
from llama_orchestrator.config.server_flags import ServerFlags
from llama_orchestrator.core import lifecycle as lc
from llama_orchestrator.core.classify import classify_exit
from llama_orchestrator.core.states import SETTLED_STATES, InstanceState
from llama_orchestrator.core.traffic_health import Evidence, TrafficHealth
from llama_orchestrator.daemon.preflight import argument_problem, note_in_log, preflight
from llama_orchestrator.daemon.protocol import InstanceStatus
from llama_orchestrator.daemon.snapshots import Snapshot
from llama_orchestrator.daemon.watchers import confirm_by_canary, probe_child, server_api_key, watch_progress
from llama_orchestrator.engine import (
    ChildProcess,
    ExitStatus,
    ProcessIdentity,
    SpawnSpec,
    adopt,
    check_ours,
    command_line,
    kill_tree,
    spawn,
    stop_tree,
    tail_lines,
    wait_exit,
)
from llama_orchestrator.errors import OrchestratorError, StoreError
from llama_orchestrator.health.probe import HealthProber
from llama_orchestrator.store import EventRecord, InstanceRecord, Store

logger = logging.getLogger(__name__)
S = InstanceState
QueueItem = tuple[int | None, lc.Event]


@dataclass
class SupervisorDeps:
    """What a supervisor needs from the daemon; tests pass fakes for the clocks and the random draw."""

    paths: HomePaths
    store: Store
    prober: HealthProber
    resolve_binary: Callable[[InstanceConfig], str | None]
    on_event: Callable[[EventRecord], None]
    server_flags: Callable[[str], ServerFlags | None] | None = None  # a binary's flags (engine.server_help)
    environ: dict[str, str] = field(default_factory=dict)
    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    random: Callable[[], float] = random.random


class InstanceSupervisor:
    def __init__(self, config: InstanceConfig, deps: SupervisorDeps, record: InstanceRecord | None) -> None:
        self.name = config.name
        self.config = config
        self.deps = deps
        self.log_path = deps.paths.instance_log(self.name)
        self.rt = lc.Runtime(state=S.RECONCILING, restarts=record.restarts if record else 0)
        self._record = record
        self._queue: asyncio.Queue[QueueItem] = asyncio.Queue()
        self._changed = asyncio.Event()
        self._child: ChildProcess | None = None
        self._generation = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_exit: ExitStatus | None = None
        self._started_wall: float | None = None
        self._ready_wall: float | None = None
        self._adopted_ready_wall: float | None = None
        self._closed = False
        self._reconciled = asyncio.Event()
        self._progress_task: asyncio.Task[None] | None = None
        self._learned_load: tuple[str, float | None] | None = None  # (model path, median load s)
        self._in_flight = 0
        self._no_requests = asyncio.Event()  # set while no gateway request is in flight
        self._no_requests.set()
        self._drift = ConfigDrift(self._render)  # the child's command, against what a config renders
        self.traffic = TrafficHealth(config.health.traffic_failures)  # the current child's gateway requests

    # ---- public API (called from the daemon's loop) -----------------------------------------
    @property
    def policy(self) -> lc.Policy:
        return lc.Policy(self.config.health, self.config.restart)

    @property
    def state(self) -> InstanceState:
        return self.rt.state

    @property
    def in_flight(self) -> int:
        """Gateway requests being answered by this instance (the directory counts them)."""
        return self._in_flight

    @in_flight.setter
    def in_flight(self, count: int) -> None:
        self._in_flight = count
        if count:
            self._no_requests.clear()
        else:
            self._no_requests.set()

    def note_traffic(self, evidence: Evidence) -> None:
        """A gateway request to this instance ended (core.traffic_health): a run of failures
        starts a one-token canary, whose verdict comes back as an `lc.Canary` event."""
        health = self.config.health
        if self.traffic.note(evidence, self.deps.monotonic(), health.interval_s, self.rt.state is S.READY):
            self._track(asyncio.create_task(confirm_by_canary(self, self._generation)))

    @property
    def child(self) -> ChildProcess | None:
        return self._child

    def submit(self, event: lc.Event) -> None:
        """Queue a command or observation; the supervisor task applies it in order."""
        self._queue.put_nowait((None, event))

    def update_config(self, config: InstanceConfig, *, running_too: bool = False) -> None:
        """Use `config` from the next start on. While the instance is meant to run, its restarts keep
        the config it runs with (as Docker's restart policy does) unless `running_too` (`up`, `restart`)."""
        if running_too or not self.rt.desired_up:
            self.config = config

    def config_change(self, config: InstanceConfig | None = None) -> str | None:
        """How the command `config` (default: the one in use) renders differs from the one the
        running process was started with (its config changed since: `up` restarts it), or None."""
        return self._drift.command(config or self.config) if self._child is not None else None

    def _render(self, config: InstanceConfig) -> LaunchCommand:
        return build_command(config, self.deps.resolve_binary(config) or "llama-server", self.deps.environ)

    async def wait_settled(self, timeout_s: float) -> InstanceState:
        """Wait until the instance is ready, failed or stopped with nothing queued (or the timeout passes)."""
        await self._wait(lambda: self.rt.state in SETTLED_STATES and self._queue.empty(), timeout_s)
        return self.rt.state

    async def wait_for_state(self, states: frozenset[InstanceState], timeout_s: float) -> bool:
        """Wait until the instance is in one of `states`; False on timeout."""
        return await self._wait(lambda: self.rt.state in states, timeout_s)

    async def _wait(self, done: Callable[[], bool], timeout_s: float) -> bool:
        # Woken by each transition; the 0.5 s cap also notices queue drains that change no state.
        deadline = time.monotonic() + timeout_s
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.5))
        return True

    # ---- the task -------------------------------------------------------------------------
    async def wait_reconciled(self) -> None:
        await self._reconciled.wait()

    async def run(self) -> None:
        """Reconcile with what the last daemon left, then apply events until closed."""
        try:
            await self._reconcile()
        finally:
            self._reconciled.set()
        while not self._closed:
            wake = lc.next_wake(self.rt, self.policy)
            timeout = None if wake is None else max(0.0, wake - self.deps.monotonic())
            try:
                generation, event = await asyncio.wait_for(self._queue.get(), timeout)
            except TimeoutError:
                generation, event = None, lc.Tick()
            if generation is not None and generation != self._generation:
                continue  # from a child that has been replaced since
            try:
                await self._apply(event)
            except OrchestratorError as exc:
                logger.error("%s: %s", self.name, exc)

    async def close(self, *, keep_process: bool, drain: bool = False) -> None:
        """Stop supervising: stop it first (a backoff too: the next daemon resumes none) unless `keep_process`.

        `drain` (the instance is being removed) lets requests in flight finish first, as `down`
        does; the daemon's own shutdown does not drain, its gateway has stopped already.
        """
        if not keep_process and (self._child is not None or self.rt.state not in (S.STOPPED, S.FAILED)):
            grace = self.config.restart.stop_grace_s
            self.submit(lc.Stop("instance removed") if drain else lc.Stop("daemon shutting down", shutdown=True))
            await self.wait_for_state(frozenset({S.STOPPED, S.FAILED}), (2 * grace if drain else grace) + 10)
        self._closed = True
        self._queue.put_nowait((None, lc.Tick()))
        self._cancel_watchers()
        self._save()

    # ---- applying decisions -----------------------------------------------------------------
    async def _apply(self, event: lc.Event) -> None:
        before = self.rt
        decision = lc.decide(before, event, self.policy, self.deps.monotonic(), self.deps.random())
        self.rt = decision.runtime
        canary = isinstance(event, lc.Canary)
        if canary:
            self.traffic.canary_done()
        # every spawn is an event, also a start retried at once (starting -> starting), and a canary's verdict
        if self.rt.state is not before.state or lc.Spawn() in decision.actions or (canary and self.rt is not before):
            self._transition(before.state, self.rt.state, self.rt.reason)
        elif self.rt != before:
            self._save()
        for action in decision.actions:
            await self._perform(action)

    def _transition(self, from_state: InstanceState, to_state: InstanceState, reason: str) -> None:
        now = self.deps.wall()
        if from_state is S.STARTING and self._progress_task is not None:
            self._progress_task.cancel()
            self._progress_task = None
        if to_state is S.READY and (from_state is S.STARTING or self._ready_wall is None):
            # an adopted child keeps the ready time the last daemon saw (the same process: its uptime goes on)
            self._ready_wall = self._adopted_ready_wall or now
        if to_state not in (S.READY, S.UNHEALTHY):
            self._ready_wall = None
        if from_state is not S.RECONCILING:  # an adopted child's is kept only until its first probe
            self._adopted_ready_wall = None
        event_id = self.deps.store.record_transition(self.name, from_state, to_state, reason, now)
        self._save()
        self.deps.on_event(EventRecord(event_id, self.name, from_state.value, to_state.value, reason, now))
        logger.info("%s: %s -> %s (%s)", self.name, from_state.value, to_state.value, reason)
        self._changed.set()

    async def _perform(self, action: lc.Action) -> None:
        if isinstance(action, lc.Spawn):
            await self._spawn()
        elif isinstance(action, lc.StopProcess):
            await self._stop(kill=action.kill, drain=action.drain)
        elif isinstance(action, lc.RecordLoadTime):
            self.deps.store.record_load_time(self.name, self.config.model.path, action.seconds, self.deps.wall())
            self._learned_load = None

    def ready_in_s(self) -> float | None:
        """Seconds until a start (or the one in progress) should be ready, from the median of the
        last loads of this model (the gateway's Retry-After); None if no load was ever timed."""
        path = self.config.model.path
        if self._learned_load is None or self._learned_load[0] != path:
            try:
                self._learned_load = (path, self.deps.store.learned_load_time(self.name, path))
            except StoreError:
                return None
        expected = self._learned_load[1]
        if expected is None:
            return None
        started = self.rt.started_at if self.rt.state is S.STARTING else None
        return expected if started is None else max(0.0, expected - (self.deps.monotonic() - started))

    async def _spawn(self) -> None:
        config = self.config
        binary = self.deps.resolve_binary(config) or "llama-server"
        flags = await asyncio.to_thread(self.deps.server_flags, binary) if self.deps.server_flags else None
        failure = preflight(config) or argument_problem(config, binary, flags)
        if failure:
            note_in_log(self.log_path, f"not started: {failure}", self.deps.wall())
            self.submit(lc.SpawnFailed(failure, permanent=True))
            return
        command = build_command(config, binary, self.deps.environ)
        try:
            child = spawn(SpawnSpec(self.name, command.argv, command.env, self.log_path))
        except OrchestratorError as exc:
            note_in_log(self.log_path, f"not started: {exc}", self.deps.wall())
            self.submit(lc.SpawnFailed(str(exc), permanent=True))
            return
        self._drift.running = RunningCommand.spawned(command, child.token)
        self._watch(child)
        self._started_wall = self.deps.wall()
        self.post(self._generation, lc.Spawned(child.pid))

    def _watch(self, child: ChildProcess) -> None:
        """Adopt `child` as the current process and start its exit watcher, prober and log follower."""
        self._cancel_watchers()
        self._generation += 1
        self._child = child
        self.traffic = TrafficHealth(self.config.health.traffic_failures)
        generation = self._generation
        for coro in (self._watch_exit(child, generation), probe_child(self, child, generation)):
            self._track(asyncio.create_task(coro))
        self._progress_task = self._track(asyncio.create_task(watch_progress(self, generation)))
        self._save()

    def _track(self, task: asyncio.Task[None]) -> asyncio.Task[None]:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _cancel_watchers(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()

    async def _stop(self, *, kill: bool, drain: bool = False) -> None:
        child = self._child
        if child is None:
            self.submit(lc.Stopped("no process"))
            return
        grace = self.config.restart.stop_grace_s
        drained = await self._drain(grace) if drain and self._in_flight else ""
        self._generation += 1  # the exit we are about to cause is not a crash
        self._cancel_watchers()
        outcome = await (kill_tree(child) if kill else stop_tree(child, grace))
        self._last_exit = outcome.exit
        self._child = None
        how = drained + ("stopped gracefully" if outcome.graceful else "killed")
        if outcome.killed_pids:
            how += f"; killed {len(outcome.killed_pids)} leftover process(es)"
        self.submit(lc.Stopped(outcome.exit.after(how)))

    async def _drain(self, timeout_s: float) -> str:
        """Wait (up to `timeout_s`) for the requests in flight to end; say how that went. The
        instance is `stopping` meanwhile, so the gateway sends it nothing new."""
        count, began = self._in_flight, self.deps.monotonic()
        logger.info("%s: waiting up to %g s for %d request(s) in flight", self.name, timeout_s, count)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._no_requests.wait(), timeout_s)
        waited = self.deps.monotonic() - began
        if self._in_flight:
            return f"{self._in_flight} of {count} request(s) still in flight after {waited:.1f} s; "
        return f"{count} request(s) in flight finished in {waited:.1f} s; "

    # ---- watchers (each bound to one child generation; probes and progress: daemon.watchers) ----
    async def _watch_exit(self, child: ChildProcess, generation: int) -> None:
        status = await wait_exit(child)
        self._last_exit = status
        failure = classify_exit(tail_lines(self.log_path, 40))
        if self._generation == generation:
            self._child = None
        self.post(generation, lc.Exited(status.describe(), status.code, failure))

    def post(self, generation: int, event: lc.Event) -> None:
        """Queue an observation about child `generation` (dropped if that child has been replaced)."""
        self._queue.put_nowait((generation, event))

    def api_key(self) -> str | None:
        """The key this instance's llama-server expects from clients, if it has one."""
        return server_api_key(self.config, self.deps.environ)

    # ---- reconciling with the last daemon ---------------------------------------------------
    async def _reconcile(self) -> None:
        record = self._record
        should_run = record is not None and lc.resumes_at_start(record.state, record.desired == "up")
        if record is None or record.pid is None or record.pid_create_time is None:
            event: lc.Event = lc.nothing_to_adopt(record.state if record else None, should_run)
        else:
            identity = ProcessIdentity(record.pid, record.pid_create_time, record.boot_id or "", record.token or "")
            verdict = check_ours(identity)
            if verdict.adoptable:
                child = adopt(identity, instance=self.name)
                self._drift.adopt(record.command, child.token, lambda: command_line(child.pid))
                self._watch(child)
                self._started_wall = record.started_at
                self._adopted_ready_wall = record.ready_at  # the same process: its uptime goes on
                event = lc.Adopted(child.pid)
            else:
                was = record.state
                reason = f"process from the last daemon is gone ({verdict.reason}); was {was}"
                if was in (S.READY.value, S.STARTING.value, S.UNHEALTHY.value):
                    reason = f"exited-while-unsupervised ({verdict.reason})"
                event = lc.NotAdopted(reason, should_run)
        self.rt = replace(self.rt, crash_count=0, last_error=record.last_error if record else None)
        await self._apply(event)

    def desire(self, up: bool) -> None:
        """Record what the user wants without changing state (used for the resume-at-start list)."""
        self.rt = replace(self.rt, desired_up=up)
        self._save()

    # ---- snapshots ------------------------------------------------------------------------
    def _snapshot(self) -> Snapshot:
        ready_wall = self._ready_wall or self._adopted_ready_wall
        return Snapshot(self.config, self.rt, self._child, self._started_wall, ready_wall, self._last_exit,
                        self.deps.wall(), self._drift.recorded())

    def _save(self) -> None:
        self.deps.store.save_instance(self._snapshot().record())

    def status(self, on_disk: InstanceConfig | None = None) -> InstanceStatus:
        """`on_disk`: the config as it is now in its file, for `changed`: what `up` would apply to
        the running process (a new command line, or settings the daemon reads from its config)."""
        changed = self._drift.describe(self.config, on_disk) if self._child is not None else None
        return self._snapshot().status(self.in_flight, changed)
