"""The daemon: the one process that owns every llama-server, and the one place L3 is wired together.

`Daemon.serve` (run by `daemon.entry.run_daemon`, what `llama-orch daemon run` and the service
managers call) takes the home's lock, opens the store (quarantining a corrupt one), builds one
supervisor per valid instance, re-adopts or starts what the last daemon left, serves the control
API and the gateway, and on SIGTERM stops everything in parallel (or leaves the instances
running for the next daemon to adopt, with `--keep-instances`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Coroutine, Iterable, Mapping
from pathlib import Path
from typing import Any

import psutil

from llama_orchestrator import __version__, eventloop, scheduling
from llama_orchestrator.config.argv import build_command
from llama_orchestrator.config.loader import Fleet, load_fleet, require_valid, resolve_binary
from llama_orchestrator.config.models import InstanceConfig
from llama_orchestrator.config.orchestrator import OrchestratorConfig
from llama_orchestrator.config.paths import HomePaths
from llama_orchestrator.core import lifecycle as lc
from llama_orchestrator.core.states import InstanceState
from llama_orchestrator.daemon.actions import ACTIONS, accept_changes, action_targets, restart_changed
from llama_orchestrator.daemon.client import recorded_address
from llama_orchestrator.daemon.config_edits import ConfigsOnDisk
from llama_orchestrator.daemon.control import serve_control
from llama_orchestrator.daemon.events import EventHub
from llama_orchestrator.daemon.gateway_host import GatewayHost
from llama_orchestrator.daemon.gpu_memory import GpuMemory
from llama_orchestrator.daemon.lock import DaemonLock
from llama_orchestrator.daemon.metrics_sampler import MetricsSampler, targets_from
from llama_orchestrator.daemon.protocol import (
    ActionResult,
    DaemonStatus,
    InstanceDetail,
    InstanceStatus,
)
from llama_orchestrator.daemon.resources import ResourceSampler
from llama_orchestrator.daemon.signals import capture_signals
from llama_orchestrator.daemon.supervisor import InstanceSupervisor, SupervisorDeps
from llama_orchestrator.engine import rotate_all, tail_lines
from llama_orchestrator.engine.server_help import server_flags
from llama_orchestrator.errors import (
    ConfigProblem,
    DaemonAlreadyRunningError,
    DaemonError,
    InstanceNotFoundError,
)
from llama_orchestrator.health.probe import HealthProber
from llama_orchestrator.store import Store

logger = logging.getLogger(__name__)
#: A log may outgrow max_bytes by what its child writes in one interval (scenario 21's bound).
ROTATE_EVERY_S = 1.0


class Daemon:
    def __init__(self, paths: HomePaths, *, autostart: bool = True, environ: dict[str, str] | None = None) -> None:
        self.paths = paths
        self.autostart = autostart
        self.environ = dict(os.environ if environ is None else environ)
        self.hub = EventHub()
        self.supervisors: dict[str, InstanceSupervisor] = {}
        self.retiring: dict[str, InstanceSupervisor] = {}  # removed, finishing requests in flight
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._keep_instances = False
        self._started_at = time.time()
        self._control_address = ""
        self._fleet: Fleet | None = None
        self._on_disk = ConfigsOnDisk(paths, self.environ)
        self._resources = ResourceSampler()
        self._metrics = MetricsSampler(lambda: targets_from(list(self.supervisors.values())))
        self._gpu = GpuMemory(self.environ)
        self.store: Store
        self.gateway_host: GatewayHost  # made once the store is open, before the control API answers
        self.prober: HealthProber
        self.quarantine_note: str | None = None

    # ---- lifecycle of the daemon itself ----------------------------------------------------
    async def serve(self) -> int:
        """Run until asked to stop; return the process exit code."""
        lock = DaemonLock(self.paths.lock_file)
        if not lock.acquire():
            raise DaemonAlreadyRunningError(lock.holder_pid(), recorded_address(self.paths))
        try:
            self.store = Store.open(self.paths.state_db)
            if self.store.quarantined:
                self.quarantine_note = (f"state.db was unreadable ({self.store.quarantine_reason}); moved to "
                                        f"{self.store.quarantined} and rebuilt from the configs and running processes")
                logger.error(self.quarantine_note)
            self.prober = HealthProber()
            self.gateway_host = GatewayHost(self, self._gpu, self.store)
            runner, self._control_address = await serve_control(self, self._orchestrator_config().control,
                                                                self.paths.control_file)
            try:
                await self._start_instances()
                await self.gateway_host.start(self._orchestrator_config().gateway)
                if self.autostart:
                    self._autostart()
                self._spawn_background(self._rotate_logs())
                self._spawn_background(self._metrics.run())
                loop = eventloop.loop_name(asyncio.get_running_loop())
                logger.info("daemon %s ready (pid %d, control %s, %s event loop, %s scheduling)", __version__,
                            os.getpid(), self._control_address, loop, scheduling.policy_name())
                with capture_signals(self._on_signal):
                    await self._stop.wait()
                await self._shutdown()
            finally:
                await runner.cleanup()
                self.paths.control_file.unlink(missing_ok=True)
        finally:
            lock.release()
        return 0

    def request_shutdown(self, *, keep_instances: bool) -> None:
        self._keep_instances = keep_instances
        self._stop.set()

    def _on_signal(self, forced: bool) -> None:
        if forced:
            logger.warning("second signal: killing every instance now")
            for sup in self.supervisors.values():
                if sup.child is not None:
                    sup.submit(lc.Stop("daemon killed"))
        self.request_shutdown(keep_instances=False)

    async def _start_instances(self) -> None:
        fleet = self._load()
        for problem in fleet.errors:
            logger.error("config: %s", problem.render())
        for _, config in sorted(fleet.instances.items()):
            self._add_supervisor(config)
        # Reconcile everyone before deciding what autostart has to do (once the gateway is up).
        await asyncio.gather(*(sup.wait_reconciled() for sup in self.supervisors.values()))

    def _autostart(self) -> None:
        """Start what starts with `up`, except what the user stopped (`stop`, `down`) and has not
        started since: a daemon restart or a reboot leaves those down, as Docker's `unless-stopped`."""
        held = self.store.held_down()
        stopped = [sup for sup in self.supervisors.values() if sup.state is InstanceState.STOPPED]
        if kept := sorted(sup.name for sup in stopped if sup.name in held and sup.config.starts_with_up):
            logger.info("not started, stopped by the user: %s (llama-orch up starts them)", ", ".join(kept))
        self._start_all(sup for sup in stopped if sup.name not in held)

    def _start_all(self, sups: Iterable[InstanceSupervisor], reason: str = "autostart") -> list[asyncio.Task[bool]]:
        """Start those that start with `up`. An on-demand one (preload) is started by the gateway
        only into free room under max_loaded: a preload evicts nothing (said in the log)."""
        gateway_starts = []
        for sup in sups:
            if not sup.config.starts_with_up:
                continue
            gateway = self.gateway_host.gateway
            if sup.config.on_demand and gateway is not None:
                if task := gateway.traffic.preload(sup.name, f"preload ({reason})"):
                    gateway_starts.append(task)
                else:
                    logger.warning("%s not preloaded: gateway.%s leaves no free room (a preload evicts nothing)",
                                   sup.name, gateway.traffic.limit_words(sup.name))
            else:
                sup.submit(lc.Start(reason))
        return gateway_starts

    async def _shutdown(self) -> None:
        keep = self._keep_instances
        logger.info("daemon stopping (%s)", "leaving instances running" if keep else "stopping instances")
        await self.gateway_host.stop()
        # An instance being removed (`rm`, draining) is out of the fleet but still has a process:
        # it stops whatever `keep` says, before the supervisors' tasks are cancelled below.
        await asyncio.gather(*(sup.close(keep_process=keep) for sup in self.supervisors.values()),
                             *(sup.close(keep_process=False) for sup in list(self.retiring.values())))
        for task in [*self._tasks.values(), *self._background]:
            task.cancel()
        await asyncio.gather(*self._tasks.values(), *self._background, return_exceptions=True)
        self.hub.close()
        await self.prober.close()
        await self._metrics.close()
        await self._gpu.close()
        self.store.close()

    def _spawn_background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _rotate_logs(self) -> None:
        while True:
            await asyncio.sleep(ROTATE_EVERY_S)
            jobs = [(sup.log_path, sup.config.logs.max_bytes, sup.config.logs.backups)
                    for sup in list(self.supervisors.values())]
            # Copying a big log blocks: keep it off the loop that serves probes and the gateway
            # (one thread hop per tick for all instances: the check is a stat when nothing is due).
            await asyncio.to_thread(rotate_all, jobs)

    # ---- configs ---------------------------------------------------------------------------
    def _load(self) -> Fleet:
        self._fleet = load_fleet(self.paths, offline=True, environ=self.environ)
        return self._fleet

    def _orchestrator_config(self) -> OrchestratorConfig:
        return (self._fleet or self._load()).orchestrator

    def _resolve_binary(self, config: InstanceConfig) -> str | None:
        return resolve_binary(config, self._orchestrator_config(), self.environ)

    def _add_supervisor(self, config: InstanceConfig) -> InstanceSupervisor:
        deps = SupervisorDeps(
            paths=self.paths,
            store=self.store,
            prober=self.prober,
            resolve_binary=self._resolve_binary,
            on_event=self.hub.publish,
            environ=self.environ,
            server_flags=server_flags,
        )
        sup = InstanceSupervisor(config, deps, self.store.get_instance(config.name))
        self.supervisors[config.name] = sup
        self._tasks[config.name] = asyncio.create_task(sup.run(), name=f"supervisor:{config.name}")
        return sup

    def reload(self) -> list[ConfigProblem]:
        """Re-read every config: add new instances, update changed ones (from their next start; one
        meant to run restarts into its old config until `up`), retire removed ones."""
        fleet = self._load()
        for name, config in fleet.instances.items():
            if name in self.supervisors:
                self.supervisors[name].update_config(config)
            else:
                self._add_supervisor(config)
        for name in [n for n in self.supervisors if n not in fleet.config_files]:
            self._spawn_background(self._retire(name))
        self._reconfigure_gateway(fleet)
        return list(fleet.errors)

    def adopt_new_configs(self) -> bool:
        """Know instances created since the configs were last applied (for `ps`, `inspect`, `rm`,
        the gateway); a stopped one takes its edited config, so its next start (by a request too)
        runs what the file says, and one whose config was deleted is forgotten. A running one runs
        on as it is until `up`, `restart` or `rm`. Whether any was added or took a new config."""
        on_disk = self._on_disk.current()
        new = [c for n, c in on_disk.items() if n not in self.supervisors and n not in self.retiring]
        for config in new:
            self._add_supervisor(config)
        idle = {n: sup for n, sup in self.supervisors.items()
                if sup.child is None and sup.state in (InstanceState.STOPPED, InstanceState.FAILED)}
        edited = [n for n, sup in idle.items() if n in on_disk and sup.config != on_disk[n]]
        for name in edited:
            idle[name].update_config(on_disk[name])
        for name in [n for n in idle if n not in self._on_disk.names()]:
            self._spawn_background(self._retire(name))
        return bool(new or edited)

    def _reconfigure_gateway(self, fleet: Fleet) -> None:
        """Apply orchestrator.json's gateway settings (and a rewritten keys file) to the running
        gateway; a broken orchestrator.json keeps the running ones, as a broken instance config does."""
        if not any(p.file == str(self.paths.orchestrator_file) for p in fleet.errors):
            self.gateway_host.reconfigure(fleet.orchestrator.gateway)

    async def start_gateway_if_down(self) -> None:
        await self.gateway_host.start_if_down(self._orchestrator_config().gateway)

    def _retire(self, name: str) -> Coroutine[Any, Any, None]:
        """Forget a removed instance now (no longer listed or routed to); the coroutine returned
        stops it as `down` would (its requests in flight finish first)."""
        sup = self.retiring[name] = self.supervisors.pop(name)
        return self._stop_retired(name, sup)

    async def _stop_retired(self, name: str, sup: InstanceSupervisor) -> None:
        try:
            await sup.close(keep_process=False, drain=True)
        finally:
            self.retiring.pop(name, None)
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()
        self.store.delete_instance(name)

    # ---- what the control API calls ----------------------------------------------------------
    def _supervisor(self, name: str) -> InstanceSupervisor:
        sup = self.supervisors.get(name)
        if sup is None and self.adopt_new_configs():
            sup = self.supervisors.get(name)
        if sup is None:
            raise InstanceNotFoundError(name, known=sorted(self.supervisors))
        return sup

    def statuses(self) -> list[InstanceStatus]:
        self.adopt_new_configs()
        on_disk = self._on_disk.current()
        return [self._status(self.supervisors[name], on_disk) for name in sorted(self.supervisors)]

    def status(self) -> DaemonStatus:
        health = self.store.health
        store_text = health.detail if not self.quarantine_note else f"{health.detail}; {self.quarantine_note}"
        memory = psutil.virtual_memory().percent
        return DaemonStatus(
            pid=os.getpid(),
            version=__version__,
            home=str(self.paths.home),
            control_address=self._control_address,
            started_at=self._started_at,
            uptime_s=time.time() - self._started_at,
            gateway=self.gateway_host.info(),
            store=store_text,
            store_ok=health.ok and not self.quarantine_note,
            instances=self.statuses(),
            host_cpu_percent=psutil.cpu_percent(None),
            host_memory_percent=memory,
            gpu_memory=self._gpu.current(),
        )

    def _status(self, sup: InstanceSupervisor, on_disk: Mapping[str, InstanceConfig]) -> InstanceStatus:
        """The supervisor's snapshot (compared with its config on disk) plus what is sampled from
        outside it (resources, llama.cpp metrics)."""
        status = sup.status(on_disk.get(sup.name))
        cpu, rss = self._resources.sample(status.pid)
        speed = self._metrics.reading(sup.name, status.pid)
        pid = status.pid
        gpu = self._gpu.process_bytes(pid) if pid is not None and sup.config.gpu.backend != "cpu" else None
        budget = self.gateway_host.counted_memory(sup.name)
        return status.model_copy(update={"cpu_percent": cpu, "rss_bytes": rss, "tokens_per_s": speed.tokens_per_s,
                                         "busy_slots": speed.busy_slots, "gpu_bytes": gpu, "budget_bytes": budget,
                                         "changed": self._on_disk.invalid(sup.name) or status.changed})

    def inspect(self, name: str) -> InstanceDetail:
        sup = self._supervisor(name)
        config = sup.config
        command = build_command(config, self._resolve_binary(config) or "llama-server", self.environ)
        return InstanceDetail(
            status=self._status(sup, self._on_disk.current()),
            config=config.model_dump(mode="json", by_alias=True, exclude={"schema_"}),
            argv=command.argv,
            env=command.redacted_env(),
            log_path=str(sup.log_path),
            log_tail=tail_lines(sup.log_path, 20),
        )

    def log_path(self, name: str) -> Path:
        if name in self.supervisors:
            return self.supervisors[name].log_path
        if name in (self._fleet.config_files if self._fleet else {}):
            return self.paths.instance_log(name)
        raise InstanceNotFoundError(name, known=sorted(self.supervisors))

    async def act(self, action: str, names: list[str], wait_s: float | None = None) -> ActionResult:
        """start/stop/restart/up/down: reload configs, queue the commands, optionally wait for them to settle."""
        if action not in ACTIONS:
            raise DaemonError(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
        self.reload()
        await self.start_gateway_if_down()
        fleet = self._fleet
        assert fleet is not None  # reload() just loaded it
        targets = action_targets(action, names, fleet, self.supervisors)
        if action in ("start", "up", "restart"):
            require_valid(fleet, targets)
        await accept_changes(action, names, targets, fleet, self.supervisors)
        since_id = self.store.last_event_id()
        hold, held = action in ("stop", "down"), self.store.held_down()
        for name in (n for n in targets if (n in held) != hold):  # autostart leaves what the user stopped down
            self.store.hold_down(name, hold, time.time())
        renewed = []  # `up` applies changed configs, as `docker compose up` recreates changed containers
        if action == "up":
            renewed = restart_changed(self.supervisors, targets if names else sorted(self.supervisors))
        targets = list(dict.fromkeys([*targets, *renewed]))
        gateway_starts: list[asyncio.Task[bool]] = []
        if action == "up" and not names:  # the fleet: preloads go through the gateway
            gateway_starts = self._start_all([self.supervisors[n] for n in targets if n not in renewed], "up requested")
        else:
            event = {"start": lc.Start, "up": lc.Start, "stop": lc.Stop, "down": lc.Stop}.get(action)
            for name in (n for n in targets if n not in renewed):
                self.supervisors[name].submit(event(f"{action} requested") if event else lc.Restart())
        if wait_s is not None:
            deadline = time.monotonic() + wait_s
            if gateway_starts:  # the gateway submits them to the supervisors a moment later
                await asyncio.wait(gateway_starts, timeout=wait_s)
            left = max(0.0, deadline - time.monotonic())
            await asyncio.gather(*(self.supervisors[n].wait_settled(left) for n in targets))
        statuses = [s for s in self.statuses() if s.name in targets]
        return ActionResult(instances=statuses, last_event_id=self.store.last_event_id(), since_event_id=since_id,
                            gateway=self.gateway_host.info())

    async def remove(self, name: str) -> None:
        """Stop and forget an instance. One whose config the daemon never loaded (written since,
        or invalid) has nothing running: only what the store may hold of an earlier one goes."""
        if name in self.supervisors:
            await self._retire(name)
        elif self.paths.instance_config(name).exists():
            self.store.delete_instance(name)
        else:
            raise InstanceNotFoundError(name, known=sorted(self.supervisors))
