"""The control API's messages, shared by the daemon, the CLI and the dashboard.

Plain frozen dataclasses with a pydantic-like surface (`model_validate`, `model_dump`,
`model_copy`, and their JSON twins). These messages only travel between our own processes of
the same version, so they need no validation; pydantic stays where users' input comes in (the
config files). Measured: importing pydantic for these models cost ~80 ms of every `llama-orch`
command's start-up, a quarter of `ps`'s 300 ms budget. Unknown keys are ignored, so an older
client can read a newer daemon's answers.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, Self


class Message:
    """Base of every control-API message (subclasses are frozen keyword-only dataclasses)."""

    @classmethod
    def model_validate(cls, data: dict[str, Any]) -> Self:
        hints = _hints(cls)
        values = {}
        for item in dataclasses.fields(cls):  # type: ignore[arg-type]
            if item.name in data:
                values[item.name] = _convert(hints[item.name], data[item.name])
        return cls(**values)

    @classmethod
    def model_validate_json(cls, text: str | bytes) -> Self:
        return cls.model_validate(json.loads(text))

    def model_dump(self, mode: str = "json") -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload, no-any-return]

    def model_dump_json(self) -> str:
        return json.dumps(self.model_dump())

    def model_copy(self, *, update: dict[str, Any] | None = None) -> Self:
        return dataclasses.replace(self, **(update or {}))  # type: ignore[type-var]


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _convert(hint: Any, value: Any) -> Any:
    """Rebuild nested messages (a field typed as a Message, an optional one, or a list of them)
    from plain JSON."""
    if isinstance(hint, type) and issubclass(hint, Message) and isinstance(value, dict):
        return hint.model_validate(value)
    if isinstance(value, dict) and isinstance(hint, types.UnionType):  # `GatewayInfo | None`
        for inner in typing.get_args(hint):
            if isinstance(inner, type) and issubclass(inner, Message):
                return inner.model_validate(value)
    if typing.get_origin(hint) is list and isinstance(value, list):
        (inner,) = typing.get_args(hint)
        return [_convert(inner, v) for v in value]
    return value


@dataclasses.dataclass(frozen=True, kw_only=True)
class InstanceStatus(Message):
    name: str
    state: str
    desired: str
    reason: str = ""
    pid: int | None = None
    host: str
    port: int
    alias: str
    backend: str
    model: str
    on_demand: bool = False
    autostart: bool = True
    started_at: float | None = None
    ready_at: float | None = None
    uptime_s: float | None = None
    restarts: int = 0
    probe_failures: int = 0
    health: str = "-"
    last_error: str | None = None
    last_exit: str | None = None
    routable: bool = False
    in_flight: int = 0
    cpu_percent: float | None = None
    rss_bytes: int | None = None
    gpu_bytes: int | None = None  # what its process holds on the GPUs (daemon.gpu_memory); None when unknown
    budget_bytes: int | None = None  # what the gateway's memory budget counts for it; None without a budget
    tokens_per_s: float | None = None  # generated tokens/s from llama-server's /metrics (server.metrics on)
    busy_slots: int | None = None  # llamacpp:requests_processing (server.metrics on)
    changed: str | None = None  # how its config now differs from the running process's command (`up` applies it)


@dataclasses.dataclass(frozen=True, kw_only=True)
class InstanceDetail(Message):
    status: InstanceStatus
    config: dict[str, object]
    argv: list[str]
    env: dict[str, str]
    log_path: str
    log_tail: list[str]


@dataclasses.dataclass(frozen=True, kw_only=True)
class EventOut(Message):
    id: int
    instance: str
    from_state: str | None
    to_state: str
    reason: str
    at: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class GatewayInfo(Message):
    enabled: bool
    address: str | None = None
    error: str | None = None  # why it is not running
    refusing: str | None = None  # running, but its API keys could not be read: why, and the fix
    restart_pending: list[str] = dataclasses.field(default_factory=list)  # changed settings only a restart applies
    # running, but orchestrator.json's gateway settings could not be applied: why, and that the running ones stay
    settings_error: str | None = None

    def summary(self) -> str:
        """One line for a header: where it listens (and that it refuses requests, or runs on settings
        that orchestrator.json no longer says), or why it does not."""
        if self.address:
            notes = ["refusing requests: its API keys could not be read"] if self.refusing else []
            if self.settings_error:
                notes.append("orchestrator.json's gateway settings not applied: `llama-orch daemon status` says why")
            return self.address + "".join(f" ({note})" for note in notes)
        return f"not running ({self.error})" if self.error else "disabled"


@dataclasses.dataclass(frozen=True, kw_only=True)
class DaemonStatus(Message):
    pid: int
    version: str
    home: str
    control_address: str
    started_at: float
    uptime_s: float
    gateway: GatewayInfo
    store: str
    store_ok: bool
    instances: list[InstanceStatus]
    host_cpu_percent: float | None = None
    host_memory_percent: float | None = None
    gpu_memory: str | None = None  # "used/total GiB" from nvidia-smi; None when unknown (no NVIDIA GPU)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ActionRequest(Message):
    names: list[str] = dataclasses.field(default_factory=list)
    keep_instances: bool = False
    wait_s: float | None = None  # wait until every named instance is ready, failed or stopped


@dataclasses.dataclass(frozen=True, kw_only=True)
class ActionResult(Message):
    """`since_event_id`: the last event before the action; `last_event_id`: the last one when the
    result was built. A client following events has seen the whole action once it has seen
    `last_event_id` (nothing to wait for when the two are equal)."""

    instances: list[InstanceStatus]
    last_event_id: int
    since_event_id: int = 0
    errors: dict[str, str] = dataclasses.field(default_factory=dict)
    gateway: GatewayInfo | None = None  # after the action (a gateway that could not start was tried again)
