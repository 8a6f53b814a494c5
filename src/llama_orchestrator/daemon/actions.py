"""Which instances a command (`up`, `down`, `start`, `stop`, `restart`) concerns, and `up`'s
restart of those whose config changed since they started (as `docker compose up` recreates
changed containers)."""

from __future__ import annotations

from collections.abc import Mapping

from llama_orchestrator.config.loader import Fleet, require_valid
from llama_orchestrator.core import lifecycle as lc
from llama_orchestrator.daemon.supervisor import InstanceSupervisor
from llama_orchestrator.errors import ConfigError, ConfigProblem, InstanceNotFoundError

ACTIONS = ("start", "stop", "restart", "up", "down")


def action_targets(
    action: str, names: list[str], fleet: Fleet, supervisors: Mapping[str, InstanceSupervisor]
) -> list[str]:
    """The instances `action` concerns: those named, else what `up` or `down` does to the fleet."""
    for name in names:
        if name not in fleet.config_files:
            raise InstanceNotFoundError(name, known=sorted(fleet.config_files))
    if names:
        missing = [n for n in names if n not in supervisors]
        if missing:
            require_valid(fleet, missing)
        return list(dict.fromkeys(names))
    if action == "up":
        return sorted(n for n, s in supervisors.items() if s.config.starts_with_up)
    if action == "down":
        return sorted(supervisors)
    problem = ConfigProblem("<request>", "names", f"name at least one instance: llama-orch {action} NAME")
    raise ConfigError([problem])


def restart_changed(supervisors: Mapping[str, InstanceSupervisor], names: list[str]) -> list[str]:
    """Restart those of `names` whose running process was started with another command line than
    their config renders now (the restart drains requests in flight first); return their names."""
    renewed = []
    for name in names:
        if change := supervisors[name].config_change():
            supervisors[name].submit(lc.Restart(f"config changed: {change}"))
            renewed.append(name)
    return renewed
