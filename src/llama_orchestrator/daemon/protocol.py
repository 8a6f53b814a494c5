"""The control API's messages (pydantic), shared by the daemon, the CLI and the dashboard.

Kept free of daemon internals so `daemon.client` and the TUI can import it without pulling in
the engine or the store.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


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


class InstanceDetail(Message):
    status: InstanceStatus
    config: dict[str, object]
    argv: list[str]
    env: dict[str, str]
    log_path: str
    log_tail: list[str]


class EventOut(Message):
    id: int
    instance: str
    from_state: str | None
    to_state: str
    reason: str
    at: float


class GatewayInfo(Message):
    enabled: bool
    address: str | None = None
    error: str | None = None


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


class ActionRequest(Message):
    names: list[str] = []
    keep_instances: bool = False
    wait_s: float | None = None  # wait until every named instance is ready, failed or stopped


class ActionResult(Message):
    instances: list[InstanceStatus]
    last_event_id: int
    errors: dict[str, str] = {}
