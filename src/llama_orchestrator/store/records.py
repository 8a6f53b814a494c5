"""The rows the store reads and writes, as frozen dataclasses (L3; stdlib and core.states only).

`None` means "not known / not set"; `0` is a real value (`restarts=0`, `last_exit_code=0`).
Times are wall-clock seconds since the epoch (`time.time()`), chosen by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from llama_orchestrator.core.states import InstanceState

Desired = Literal["up", "down"]


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceRecord:
    """The persisted runtime state of one instance (what a restarted daemon reconciles from)."""

    name: str
    state: InstanceState
    updated_at: float
    desired: Desired = "down"  # what the user last asked for
    pid: int | None = None
    pid_create_time: float | None = None  # with boot_id: proves `pid` is still our child
    boot_id: str | None = None
    token: str | None = None  # random per spawn, put in the child's environment
    command: str | None = None  # what the process was spawned with (JSON, config.drift.RunningCommand)
    port: int | None = None
    host: str | None = None
    started_at: float | None = None
    ready_at: float | None = None
    restarts: int = 0
    consecutive_failures: int = 0
    last_exit_code: int | None = None
    last_exit_signal: int | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One state transition of one instance; `id` is strictly increasing in the order recorded."""

    id: int
    instance: str
    from_state: str | None
    to_state: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class LoadTimeRecord:
    """How long one start of `instance` with `model_path` took to become ready."""

    id: int
    instance: str
    model_path: str
    seconds: float
    at: float
