"""The process engine (L3): the only package that spawns, watches or signals processes.

Spawning (`spawn`), exit watching (`wait_exit`), stopping whole trees (`stop_tree`,
`kill_tree`), proving a recorded pid is still ours (`check_ours`, `adopt`), port checks
(`port_holder`) and instance log files (`rotate_if_needed`, `tail_lines`, `follow`).
May import stdlib, psutil, errors, _platform and config.paths; never another L3 package.
"""

from __future__ import annotations

from llama_orchestrator.engine.child import (
    ENV_CHILD_TOKEN,
    ENV_INSTANCE,
    ChildProcess,
    ExitStatus,
    ProcessIdentity,
    StopOutcome,
)
from llama_orchestrator.engine.exitwatch import exit_status_now, wait_exit
from llama_orchestrator.engine.identity import AdoptVerdict, adopt, boot_id, check_ours, command_line
from llama_orchestrator.engine.logfile import follow, open_private, rotate_all, rotate_if_needed, tail_lines
from llama_orchestrator.engine.ports import PortHolder, is_port_free, port_holder
from llama_orchestrator.engine.spawn import SpawnSpec, spawn
from llama_orchestrator.engine.stop import kill_tree, stop_tree

__all__ = [
    "ENV_CHILD_TOKEN",
    "ENV_INSTANCE",
    "AdoptVerdict",
    "ChildProcess",
    "ExitStatus",
    "PortHolder",
    "ProcessIdentity",
    "SpawnSpec",
    "StopOutcome",
    "adopt",
    "boot_id",
    "check_ours",
    "command_line",
    "exit_status_now",
    "follow",
    "is_port_free",
    "kill_tree",
    "open_private",
    "port_holder",
    "rotate_all",
    "rotate_if_needed",
    "spawn",
    "stop_tree",
    "tail_lines",
    "wait_exit",
]
