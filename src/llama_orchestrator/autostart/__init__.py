"""Start the daemon at boot or logon: systemd units, launchd agents, Windows tasks and services (L3).

Renderers are pure and return a `ServicePlan` (files and commands as data); `executor` writes the
files and runs the commands through an injectable `CommandRunner`; `status` reads the service
manager's answer. Imports only the stdlib, `config`, `errors` and `_platform`: never engine,
store, daemon or cli (the Windows service reaches the daemon through a dotted entry point).
"""

from __future__ import annotations

from llama_orchestrator.autostart.executor import (
    CommandResult,
    CommandRunner,
    SubprocessCommandRunner,
    apply,
    remove,
)
from llama_orchestrator.autostart.plan import build_plan, current_host, home_stop_timeout_s
from llama_orchestrator.autostart.spec import (
    Command,
    HostFacts,
    Mode,
    RenderedFile,
    ServicePlan,
)
from llama_orchestrator.autostart.status import ServiceStatus, locate, read_status, refuse_other_home

__all__ = [
    "Command",
    "CommandResult",
    "CommandRunner",
    "HostFacts",
    "Mode",
    "RenderedFile",
    "ServicePlan",
    "ServiceStatus",
    "SubprocessCommandRunner",
    "apply",
    "build_plan",
    "current_host",
    "home_stop_timeout_s",
    "locate",
    "read_status",
    "refuse_other_home",
    "remove",
]
