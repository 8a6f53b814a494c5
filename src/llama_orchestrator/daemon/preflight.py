"""Before a spawn: refuse a start that cannot work, and say why where the user will look."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from llama_orchestrator import gguf_file
from llama_orchestrator.config.models import InstanceConfig
from llama_orchestrator.config.server_flags import ServerFlags, config_problems
from llama_orchestrator.engine import port_holder
from llama_orchestrator.errors import OrchestratorError


def preflight(config: InstanceConfig) -> str | None:
    """The reason a start of `config` cannot work (a missing or non-GGUF model, port held), or None."""
    if (unloadable := gguf_file.problem(config.model.path)) is not None:
        return unloadable
    if (who := _port_held_by(config.server.host, config.server.port)) is not None:
        return f"port-in-use: {config.server.host}:{config.server.port} is held by {who}"
    return None


def gateway_start_problem(exc: OrchestratorError, host: str, port: int) -> str:
    """Why the gateway did not start, with who holds its port when one does, and the hint: what
    `daemon status`, `ps` and the commands that apply the configs show."""
    problem = str(exc)
    with contextlib.suppress(OSError):
        if (who := _port_held_by(host, port)) is not None:
            problem += f" (held by {who})"
    return f"{problem}; {exc.hint}" if exc.hint else problem


def _port_held_by(host: str, port: int) -> str | None:
    holder = port_holder(host, port)
    if holder is None:
        return None
    return f"pid {holder.pid} ({holder.name})" if holder.pid else "another process"


def argument_problem(config: InstanceConfig, binary: str, flags: ServerFlags | None) -> str | None:
    """Why `binary` would refuse `config`'s command line (its flags as its --help lists them), or None;
    llama-server itself would name only the first bad argument, and suggest nothing."""
    found = config_problems(config, binary, flags) if flags is not None else []
    if not found:
        return None
    more = f" (and {len(found) - 1} more: `llama-orch config validate {config.name}`)" if len(found) > 1 else ""
    return f"bad-argument: {found[0][0]}: {found[0][1]}{more}"


def note_in_log(log_path: Path, message: str, wall: float) -> None:
    """A start that never spawned leaves no output of its own: say why in the instance's log,
    so `logs` and the tail a failed `up` shows end with the reason, not an older run's lines."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(wall))
    with contextlib.suppress(OSError):
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a", encoding="utf-8") as log:
            log.write(f"[llama-orch {stamp}] {message}\n")
