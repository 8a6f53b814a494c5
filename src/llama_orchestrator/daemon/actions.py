"""Which instances a command (`up`, `down`, `start`, `stop`, `restart`) concerns, and `up`'s
restart of those whose config changed since they started (as `docker compose up` recreates
changed containers), refused before anything stops when the new config cannot start."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from llama_orchestrator import gguf_file
from llama_orchestrator.config.loader import Fleet, require_valid
from llama_orchestrator.config.models import InstanceConfig
from llama_orchestrator.config.server_flags import config_problems
from llama_orchestrator.core import lifecycle as lc
from llama_orchestrator.daemon.supervisor import InstanceSupervisor, SupervisorDeps
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


async def accept_changes(
    action: str, names: list[str], targets: list[str], fleet: Fleet, supervisors: Mapping[str, InstanceSupervisor]
) -> None:
    """`up` and `restart` apply the configs on disk to their running instances too (the others only
    to what is not meant to run: a crash restarts into the config it ran with, InstanceSupervisor.
    update_config), but first refuse (ConfigError) a changed config whose start would fail its
    checks: else a healthy process is stopped for a start that cannot work. Nothing is stopped or
    started, as `docker compose up` with a bad compose file. (An unchanged config that cannot
    start, its model file gone, say, is `restart`ed: the failed start says why, exit 6.)"""
    if action not in ("up", "restart"):
        return
    scope = [n for n in (targets if names else sorted(supervisors)) if n in fleet.instances]
    changed = [n for n in scope if supervisors[n].config_change(fleet.instances[n])]
    problems: list[ConfigProblem] = []
    refused = []
    for name in changed:  # --help runs once per build of a binary (engine.server_help), off the loop
        file = str(fleet.config_files.get(name, name))
        found = await asyncio.to_thread(_start_problems, fleet.instances[name], supervisors[name].deps, file)
        if found:
            refused.append(name)
            problems += found
    if problems:
        runs = "runs" if len(refused) == 1 else "run"
        raise ConfigError(problems, hint=f"nothing was stopped or started: {', '.join(refused)} {runs} on as "
                                         f"before; fix the config, then `llama-orch {action}` again")
    for name in scope:
        supervisors[name].update_config(fleet.instances[name], running_too=True)


def _start_problems(config: InstanceConfig, deps: SupervisorDeps, file: str) -> list[ConfigProblem]:
    """What a supervisor's start of `config` would refuse (daemon.preflight and the argument check
    in InstanceSupervisor._spawn), but a port held: the running process holds its own."""
    problems = []
    if (unloadable := gguf_file.problem(config.model.path)) is not None:
        problems.append(ConfigProblem(file, "model.path", unloadable))
    binary = deps.resolve_binary(config) or "llama-server"
    flags = deps.server_flags(binary) if deps.server_flags else None
    if flags is not None:
        problems += [ConfigProblem(file, field, message) for field, message in config_problems(config, binary, flags)]
    return problems


def restart_changed(supervisors: Mapping[str, InstanceSupervisor], names: list[str]) -> list[str]:
    """Restart those of `names` whose running process was started with another command line than
    their config renders now (the restart drains requests in flight first); return their names."""
    renewed = []
    for name in names:
        if change := supervisors[name].config_change():
            supervisors[name].submit(lc.Restart(f"config changed: {change}"))
            renewed.append(name)
    return renewed
