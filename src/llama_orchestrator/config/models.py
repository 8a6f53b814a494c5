"""The config file formats: `instances/<name>/config.json` and `orchestrator.json` (pydantic v2).

Every model forbids unknown keys (a typo is an error, with the nearest valid key suggested by the
loader) and is frozen. `None` means "not set" and is never rendered; `0` and `False` are values.
Units are in the field names (`timeout_s`). Defaults follow DESIGN section 4.
"""

from __future__ import annotations

import functools
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationInfo,
    field_validator,
    model_validator,
)

from llama_orchestrator.config.names import check_instance_name
from llama_orchestrator.config.rules import backoff_problem, checked_apart, instance_findings, refuse

Backend = Literal["cpu", "vulkan", "cuda", "rocm", "metal"]
RestartMode = Literal["no", "on-failure", "always"]
DeepProbe = Literal["off", "slots", "completion"]

#: Flags the orchestrator owns: passing them in `args` would break supervision or leak secrets.
OWNED_FLAGS: dict[str, str] = {
    "--host": "server.host",
    "--port": "server.port",
    "--api-key": "server.api_key_file (never put a key on the command line)",
    "--api-key-file": "server.api_key_file",
    "-m": "model.path",
    "--model": "model.path",
    "-a": "model.alias",
    "--alias": "model.alias",
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ModelSection(Strict):
    """Which GGUF file to serve and how big its context and batches are."""

    path: str = Field(
        min_length=1, description="Path to the .gguf file; relative paths are relative to the instance directory."
    )
    alias: str | None = Field(
        None, min_length=1, description="Name clients use in the `model` field; defaults to the instance name."
    )
    aliases: list[str] = Field(
        default_factory=list,
        description="More names that route here through the gateway, e.g. the model ids a client sends by "
        "default (\"gpt-4o-mini\", \"claude-haiku-4-5\"); shared by several instances, they make replicas.",
    )
    context_size: int | None = Field(None, ge=0, description="-c/--ctx-size; 0 means the model's own context length.")
    batch_size: int | None = Field(None, ge=1, description="-b/--batch-size")
    ubatch_size: int | None = Field(None, ge=1, description="-ub/--ubatch-size")
    threads: int | None = Field(None, ge=-1, description="-t/--threads; -1 means automatic.")
    parallel: int | None = Field(None, description="-np/--parallel slots: 1 or more, or -1 for automatic.")
    embeddings: bool = Field(False, description="--embeddings: serve /v1/embeddings.")
    chat_template: str | None = Field(
        None, description="--chat-template: a Jinja template, or one of llama.cpp's built-in names (gemma, "
        "llama3, ...), which is rendered with --no-jinja, the only way llama-server applies a name.",
    )
    jinja: bool | None = Field(None, description="--jinja / --no-jinja")

    @field_validator("parallel")
    @classmethod
    def _slots(cls, value: int | None) -> int | None:
        if value is not None and value < 1 and value != -1:
            raise ValueError(f"parallel {value} is no number of slots llama-server accepts: give 1 or more, "
                             "or -1 to let it choose")
        return value

    @field_validator("aliases")
    @classmethod
    def _distinct_aliases(cls, value: list[str]) -> list[str]:
        wrong = [f"alias {name!r} is empty or has spaces around it" for name in value
                 if not name.strip() or name != name.strip()]
        repeated = sorted({n for n in value if value.count(n) > 1})
        if repeated:
            wrong.append(f"{', '.join(repeated)} listed more than once")
        if wrong:
            raise ValueError("; ".join(wrong))
        return value


class ServerSection(Strict):
    host: str = Field("127.0.0.1", description="Address llama-server binds; loopback unless you mean it.")
    port: int = Field(ge=1, le=65535, description="Port llama-server listens on; unique across instances.")
    api_key_file: str | None = Field(None, description="File holding the key clients must send to this llama-server.")
    api_key_env: str | None = Field(
        None, description="Environment variable holding that key (passed as LLAMA_API_KEY, never argv)."
    )
    metrics: bool = Field(False, description="--metrics: expose llama.cpp's Prometheus metrics.")
    timeout_s: int | None = Field(None, ge=1, description="-to/--timeout: read/write timeout of llama-server.")

    @property
    def base_url(self) -> str:
        """Where this machine reaches the server (a wildcard bind is reached over loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"


class GpuSection(Strict):
    backend: Backend = Field("cpu", description="Which llama-server build to run: cpu, vulkan, cuda, rocm, metal.")
    devices: list[int] | None = Field(None, description="GPU indices for --device (e.g. [0] → Vulkan0).")
    layers: int | Literal["auto", "all"] | None = Field(
        None, description="-ngl/--n-gpu-layers; 0 keeps every layer on the CPU."
    )
    split_mode: Literal["none", "layer", "row"] | None = Field(None, description="-sm/--split-mode")
    main_gpu: int | None = Field(None, ge=0, description="-mg/--main-gpu")
    tensor_split: list[float] | None = Field(None, description="-ts/--tensor-split")

    @field_validator("devices")
    @classmethod
    def _devices_non_negative(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(d < 0 for d in value):
            raise ValueError("device indices must be 0 or greater")
        return value

    @field_validator("layers")
    @classmethod
    def _layers_non_negative(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and value < -1:
            raise ValueError("layers must be -1 (all), 0 or more, 'auto' or 'all'")
        return value


class HealthPolicy(Strict):
    interval_s: float = Field(10.0, gt=0, description="Seconds between /health probes while ready.")
    timeout_s: float = Field(3.0, gt=0, description="Seconds a probe may take before it counts as failed.")
    failure_threshold: int = Field(
        3, ge=1,
        description="Failed probes in a row that make the instance unhealthy "
        "(after a failure, probes come at half the interval).",
    )
    start_poll_s: float = Field(0.1, gt=0, le=5, description="Seconds between /health probes while starting.")
    start_timeout_s: float = Field(
        300.0, gt=0, description="Start deadline; extended while the log shows loading progress."
    )
    deep_probe: DeepProbe = Field("off", description="Also probe /slots or a one-token completion while idle.")
    deep_interval_s: float = Field(60.0, gt=0, description="Seconds between deep probes (or answered requests).")
    traffic_failures: int = Field(
        3, ge=0, description="Gateway requests in a row that fail on the server's side (its 5xx, a cut connection, "
        "a timeout) before a one-token canary checks it; if that fails too, the instance is unhealthy. 0: off.",
    )


class RestartPolicy(Strict):
    policy: RestartMode = Field("on-failure", description="no, on-failure or always.")
    backoff_initial_s: float = Field(2.0, ge=0, description="First delay after a crash; doubles each time.")
    backoff_max_s: float = Field(300.0, ge=0, description="Cap on the delay.")
    reset_after_s: float = Field(600.0, ge=0, description="Ready this long resets the crash counter.")
    max_start_failures: int = Field(5, ge=1, description="Failed starts in a row before the instance is marked failed.")
    stop_grace_s: float = Field(
        15.0, ge=0,
        description="Seconds between the graceful stop signal and the kill; also the longest wait, before the "
        "signal, for the gateway's requests in flight on a ready instance being stopped or restarted.",
    )

    @model_validator(mode="after")
    def _cap_not_below_initial(self, info: ValidationInfo) -> RestartPolicy:
        if not checked_apart(info) and (problem := backoff_problem(self)):
            refuse(type(self).__name__, [("backoff_max_s", problem)])
        return self


class LogPolicy(Strict):
    max_bytes: int = Field(10 * 1024 * 1024, ge=4096, description="Rotate a log file when it grows past this size.")
    backups: int = Field(3, ge=0, le=100, description="Rotated files to keep.")


_ROUTING_FIELDS = ("model", "stream")  # the gateway routes and answers by these: never rewritten


class RequestFilters(Strict):
    """How the gateway rewrites a request body routed to this instance by its `model` field
    (llama-swap's filters): to impose a model's recommended sampling whatever the client sends."""

    strip_params: list[str] = Field(
        default_factory=list,
        description="Top-level fields removed from each request body (e.g. [\"temperature\", \"top_p\"]), "
        "so llama-server's own defaults (its args) apply.",
    )
    set_params: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="Top-level fields set in each request body, replacing the client's (e.g. {\"temperature\": 0.6}).",
    )

    @field_validator("strip_params", "set_params")
    @classmethod
    def _not_routing_fields(cls, value: list[str] | dict[str, JsonValue]) -> list[str] | dict[str, JsonValue]:
        routing = [name for name in _ROUTING_FIELDS if name in value]
        if routing:
            it = "it" if len(routing) == 1 else "them"
            raise ValueError(f"{', '.join(map(repr, routing))} cannot be filtered: the gateway routes requests by "
                             f"{it}; remove {it}")
        return value

    @property
    def active(self) -> bool:
        return bool(self.strip_params or self.set_params)


def _variant_name(name: str) -> str:
    if not name.strip() or name != name.strip():
        raise ValueError(f"variant name {name!r} is empty or has spaces around it")
    return name


# Judged key by key, so that a bad name hides neither the other variants nor its own filters.
VariantName = Annotated[str, AfterValidator(_variant_name)]


class InstanceConfig(Strict):
    """One llama-server instance, as `instances/<name>/config.json` describes it."""

    schema_: str | None = Field(None, alias="$schema")
    name: str
    model: ModelSection
    server: ServerSection
    gpu: GpuSection = GpuSection()
    build: str | None = Field(
        None, description="Named llama-server build from orchestrator.json; defaults to the backend."
    )
    binary: str | None = Field(None, description="Explicit llama-server path; overrides builds.")
    args: list[str] = Field(default_factory=list, description="Extra llama-server arguments, passed through in order.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables for llama-server.")
    health: HealthPolicy = HealthPolicy()
    restart: RestartPolicy = RestartPolicy()
    logs: LogPolicy = LogPolicy()
    autostart: bool = Field(True, description="Start with `llama-orch up` and when the daemon starts.")
    on_demand: bool = Field(False, description="Start on the first gateway request instead.")
    preload: bool = Field(
        False, description="An on_demand instance: also start it with `llama-orch up` and when the daemon starts "
        "(as far as the gateway's max_loaded leaves room), so the first request finds it loaded; the idle TTL "
        "and eviction still stop it, and the next request starts it again.",
    )
    idle_ttl_s: float | None = Field(None, gt=0, description="Stop after this many seconds without requests.")
    pinned: bool = Field(False, description="Never evicted to make room for another model.")
    memory_gib: float | None = Field(
        None, gt=0,
        description="What this instance holds when loaded, in GiB, for the gateway's ram_budget_gib or "
        "vram_budget_gib (its GPU memory when it offloads to one), when you know better than the estimate "
        "from its model file and the size it last reached.",
    )
    min_residency_s: float | None = Field(
        None, gt=0,
        description="Under the gateway's max_loaded or memory budgets: not evicted until it has been ready this "
        "many seconds (a request for another model waits, or gets 503 with Retry-After), so two models taking "
        "turns do not reload at every request. The idle TTL still applies.",
    )
    eviction_priority: int = Field(
        0, description="Under the gateway's max_loaded or memory budgets: idle instances with lower values are "
        "evicted first, then the least recently used.",
    )
    group: str | None = Field(
        None, min_length=1,
        description="An on_demand instance's group: gateway.group_limits caps how many of its members run at "
        "once (say one large chat model at a time beside an always-loaded embedding model).",
    )
    unlisted: bool = Field(
        False, description="Left out of the gateway's model lists (/v1/models, /models) and of the names its "
        "errors offer; still served to requests that name it (an embedding or title model a chat UI need not offer).",
    )
    request_filters: RequestFilters = Field(
        RequestFilters(), description="Rewrites of request bodies the gateway routes here by `model`."
    )
    variants: dict[VariantName, RequestFilters] = Field(
        default_factory=dict,
        description="More names for this instance, each with request filters of its own, applied after "
        "request_filters: one loaded model offered as several presets (say `qwen-think` and `qwen-fast`, "
        "with their own sampling and chat_template_kwargs), chosen per request by `model`, with no reload. "
        "Routed, listed and shared between instances as model.aliases are.",
    )

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        problem = check_instance_name(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("args")
    @classmethod
    def _no_owned_flags(cls, value: list[str]) -> list[str]:
        owned = dict.fromkeys(flag for arg in value if (flag := arg.split("=", 1)[0]) in OWNED_FLAGS)
        if owned:
            raise ValueError("; ".join(f"{flag} is set by the orchestrator; use {OWNED_FLAGS[flag]} instead"
                                       for flag in owned))
        return value

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> InstanceConfig:
        """The rules across fields (config.rules), unless the caller runs them itself."""
        if not checked_apart(info):
            refuse(type(self).__name__, instance_findings(self))
        return self

    @property
    def starts_with_up(self) -> bool:
        """Started by `llama-orch up` (without names) and when the daemon starts: an on-demand
        instance when it is preloaded (whatever autostart says), any other when autostart."""
        return self.preload if self.on_demand else self.autostart

    @property
    def served_name(self) -> str:
        """The name clients put in the `model` field."""
        return self.model.alias or self.name

    @functools.cached_property
    def extra_aliases(self) -> tuple[str, ...]:
        """`model.aliases` and the variants' names, less the instance's own names: further names
        the gateway routes here (cached: the gateway asks on every request, and the config is frozen)."""
        return tuple(a for a in (*self.model.aliases, *self.variants) if a not in (self.served_name, self.name))
