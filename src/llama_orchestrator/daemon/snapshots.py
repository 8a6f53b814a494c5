"""What a supervisor's instance looks like from outside: the row it saves and the status it shows.

Pure: built from the supervisor's fields and the wall clock it passes in, so the two views of one
moment cannot disagree on the process, the times or the health.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llama_orchestrator.config.models import InstanceConfig
from llama_orchestrator.core import lifecycle as lc
from llama_orchestrator.core.states import InstanceState
from llama_orchestrator.daemon.protocol import InstanceStatus
from llama_orchestrator.engine import ChildProcess, ExitStatus
from llama_orchestrator.store import InstanceRecord

S = InstanceState


def config_columns(config: InstanceConfig) -> dict[str, Any]:
    """The status columns an instance's config decides (the daemon's rows and `ps` without one share them)."""
    return {"host": config.server.host, "port": config.server.port, "alias": config.served_name,
            "backend": config.gpu.backend, "model": config.model.path, "on_demand": config.on_demand,
            "autostart": config.autostart}


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One moment of an instance: its config, runtime state, process and times."""

    config: InstanceConfig
    rt: lc.Runtime
    child: ChildProcess | None
    started_wall: float | None
    ready_wall: float | None
    last_exit: ExitStatus | None
    now: float
    command: str | None = None  # what the child was spawned with (config.drift.RunningCommand)

    def record(self) -> InstanceRecord:
        """The state.db row: enough to adopt the process after a daemon restart, and its history."""
        config, rt, child, last_exit = self.config, self.rt, self.child, self.last_exit
        return InstanceRecord(
            name=config.name,
            state=rt.state,
            pid=child.pid if child else None,
            pid_create_time=child.create_time if child else None,
            boot_id=child.boot_id if child else None,
            token=child.token if child else None,
            command=self.command if child else None,
            port=config.server.port,
            host=config.server.host,
            started_at=self.started_wall if child else None,
            ready_at=self.ready_wall,
            restarts=rt.restarts,
            consecutive_failures=rt.start_failures,
            last_exit_code=last_exit.code if last_exit else None,
            last_exit_signal=last_exit.signal if last_exit else None,
            last_error=rt.last_error,
            desired="up" if rt.desired_up else "down",
            updated_at=self.now,
        )

    def status(self, in_flight: int, changed: str | None = None) -> InstanceStatus:
        """What `ps`, the dashboard and the gateway's directory read."""
        config, rt, child, last_exit = self.config, self.rt, self.child, self.last_exit
        serving = rt.state in (S.READY, S.UNHEALTHY)
        # starting with a ready time: a child adopted from the last daemon, its first probe under way
        since = self.ready_wall if serving or rt.state is S.STARTING else None
        health = "-"
        if serving:
            threshold = config.health.failure_threshold
            health = "ok" if rt.probe_failures == 0 else f"failing {rt.probe_failures}/{threshold}"
        return InstanceStatus(
            name=config.name,
            state=rt.state.value,
            desired="up" if rt.desired_up else "down",
            reason=rt.reason,
            pid=child.pid if child else None,
            **config_columns(config),
            started_at=self.started_wall if child else None,
            ready_at=since,
            uptime_s=(self.now - since) if since else None,
            restarts=rt.restarts,
            probe_failures=rt.probe_failures,
            health=health,
            last_error=rt.last_error,
            last_exit=last_exit.describe() if last_exit else None,
            routable=rt.state is S.READY and rt.probe_failures == 0,
            in_flight=in_flight,
            changed=changed,
        )
