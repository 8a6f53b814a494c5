"""`orchestrator.json`: the gateway, the control API, defaults and named llama-server builds
(pydantic v2, as config.models: unknown keys refused, frozen, units in the field names)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from llama_orchestrator.config.models import Strict
from llama_orchestrator.config.origins import DEFAULT_ORIGINS, origin_problem
from llama_orchestrator.config.rules import checked_apart, tls_problem

GIB = 1024 ** 3


class GatewayConfig(Strict):
    enabled: bool = Field(True, description="Serve the OpenAI-compatible endpoint.")
    host: str = Field("127.0.0.1", description="Listen address; anything but loopback needs API keys.")
    port: int = Field(8000, ge=1, le=65535)
    api_keys_env: str | None = Field(None, description="Environment variable holding comma-separated inference keys.")
    api_keys_file: str | None = Field(
        None, description="File of inference keys: one per line, `key` or `key model1,model2`."
    )
    default_model: str | None = Field(
        None, min_length=1,
        description="Where a request without a `model` goes (an instance name or alias): llama.cpp's own web UI "
        "and clients of its native API (/completion, /infill) send none. Unset: to the only model served, "
        "else 400.",
    )
    tls_cert_file: str | None = Field(
        None, description="PEM certificate (chain) for HTTPS; with tls_key_file the gateway speaks TLS only."
    )
    tls_key_file: str | None = Field(None, description="PEM private key of tls_cert_file, without a passphrase.")
    request_timeout_s: float = Field(600.0, gt=0, description="Longest a proxied request may take.")
    start_wait: Literal["hold", "reject"] = Field(
        "hold", description="While a model loads, or waits for room under max_loaded: hold the request, or answer 503."
    )
    start_wait_timeout_s: float = Field(
        300.0, gt=0, description="Longest a held request waits for its model to load (or for room to load it)."
    )
    hold_keepalive_s: float | None = Field(
        None, gt=0,
        description="A streamed request held this long starts its SSE answer and gets a comment line this often "
        "until its model is up (for clients with short read timeouts); a failed start then ends the stream "
        "with an error event instead of a 503. Off when null.",
    )
    max_loaded: int | None = Field(
        None, ge=1,
        description="Keep at most this many on-demand instances running: a start evicts the least recently used "
        "idle one (never a pinned, busy or awaited one) and begins once it has exited; with none idle, a held "
        "request waits for one. No limit when null.",
    )
    group_limits: dict[str, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict,
        description="Group name -> most on-demand instances of that group (their `group`) running at once: "
        "starting another evicts the group's least recently used idle member, as max_loaded does for all of them.",
    )
    ram_budget_gib: float | None = Field(
        None, gt=0,
        description="Keep the memory of the instances up that run on the CPU (backend cpu, or gpu.layers 0) "
        "within this many GiB: a start evicts idle on-demand ones, least recently used first, as max_loaded "
        "does, until it fits. An instance counts the most it was seen holding (its resident size, prompt "
        "cache included) under the same model, GPU settings and arguments or, before its first such run, an "
        "estimate from its model file (weights, KV cache, overhead); its memory_gib overrides both. No "
        "budget when null.",
    )
    vram_budget_gib: float | None = Field(
        None, gt=0,
        description="The same for instances that offload to a GPU (all their GPUs together): their offloaded "
        "weights, KV cache and overhead, estimated from the model file unless memory_gib says. No budget when null.",
    )
    queue_size: int = Field(64, ge=0, description="Requests queued per instance before 429.")
    upstream_keepalive_s: float = Field(
        4.0, gt=0, description="Close idle upstream connections before llama-server's 5 s."
    )
    cors_origins: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ORIGINS),
        description="Browser origins (web pages, desktop apps) allowed to call the gateway: scheme://host[:port] "
        "with * for any part of host or port, or * alone for every origin. A request from any other origin gets "
        "403. The default allows pages on this machine (localhost, 127.0.0.1, [::1]), desktop apps' web views "
        "(app://, tauri://, vscode-webview://, vscode-file://) and browser extensions (chrome-extension://, "
        "moz-extension://); [] refuses every browser.",
    )

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        problem = origin_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @property
    def memory_budgets(self) -> dict[str, int]:
        """Each memory pool's budget in bytes (config.footprint.pool_of), for the pools that have one."""
        budgets = {"ram": self.ram_budget_gib, "vram": self.vram_budget_gib}
        return {pool: int(gib * GIB) for pool, gib in budgets.items() if gib is not None}

    @model_validator(mode="after")
    def _tls_pair(self, info: ValidationInfo) -> GatewayConfig:
        if not checked_apart(info) and (problem := tls_problem(self)):
            raise ValueError(problem)
        return self


class ControlConfig(Strict):
    host: str = Field("127.0.0.1", description="Control API address (loopback only unless you mean it).")
    port: int = Field(0, ge=0, le=65535, description="0 picks a free port, written to run/control.json.")


class OrchestratorConfig(Strict):
    """`orchestrator.json`: the gateway, the control API, defaults and named llama-server builds."""

    schema_: str | None = Field(None, alias="$schema")
    gateway: GatewayConfig = GatewayConfig()
    control: ControlConfig = ControlConfig()
    builds: dict[str, str] = Field(
        default_factory=dict, description="Build name (cpu, vulkan, cuda, …) → llama-server path."
    )
    defaults: dict[str, object] = Field(default_factory=dict, description="Merged under every instance config.")
