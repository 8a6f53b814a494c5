"""The daemon's `InstanceDirectory`: the gateway's view of the supervisors (DESIGN section 5).

The gateway (L3) never sees a supervisor; this adapter turns each one into an `Upstream`
snapshot and turns the gateway's start/stop wishes into supervisor events. It reads the
supervisor's runtime directly rather than `status()` because `upstreams()` runs on every
request. `last_used` lives here: it is stamped by every request start/end and when an instance
becomes ready (so an instance started by hand, never used, still idles out), and forgotten when
the instance goes down.

    gateway = await start_gateway(service, service_config.gateway)   # service.supervisors
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from llama_orchestrator import gguf_file
from llama_orchestrator.config import footprint
from llama_orchestrator.config.models import InstanceConfig
from llama_orchestrator.core import lifecycle as lc
from llama_orchestrator.core.routing import Upstream
from llama_orchestrator.core.states import InstanceState
from llama_orchestrator.core.traffic_health import Evidence
from llama_orchestrator.daemon.resources import resident_bytes
from llama_orchestrator.daemon.supervisor import InstanceSupervisor
from llama_orchestrator.errors import StoreError
from llama_orchestrator.gateway.request_filters import Rewrite, rewriter

logger = logging.getLogger(__name__)

S = InstanceState
_UP = frozenset({S.READY, S.UNHEALTHY})
_NO_PROCESS = frozenset({S.STOPPED, S.FAILED})
_READY_OR_FAILED = frozenset({S.READY, S.FAILED})
_RECHECK_S = 0.25
_ADOPT_EVERY_S = 1.0
_KEY_FILE_RECHECK_S = 1.0  # a key file is read at most this often, not on every request
_READ_EVERY_S = 2.0  # with a memory budget, what each running instance holds is read this often
_PEAK_STEP = 1024 * 1024  # a new most-seen is kept (and stored) when it grows by more than this


def connect_base_url(config: InstanceConfig) -> str:
    """Where the gateway reaches an instance (a wildcard bind is reached over loopback)."""
    return config.server.base_url


def _up_for_s(sup: InstanceSupervisor) -> float | None:
    """Seconds since the instance last became ready, on the supervisor's own clock."""
    ready_at = sup.rt.ready_at
    return None if ready_at is None else max(0.0, sup.deps.monotonic() - ready_at)


@dataclass(frozen=True, slots=True)
class _Fixed:
    """The parts of an `Upstream` that only a new config changes."""

    config: InstanceConfig
    names: frozenset[str]  # the instance name, its alias and further aliases: what routes here
    alias: str
    aliases: tuple[str, ...]
    variants: tuple[str, ...]
    base_url: str
    on_demand: bool
    pinned: bool
    idle_ttl_s: float | None
    slots: int | None
    metrics: bool
    min_residency_s: float | None
    eviction_priority: int
    group: str | None
    rewrite_body: Rewrite | None
    listed: bool
    model_bytes: int
    model_mtime: float
    memory_pool: footprint.Pool

    @classmethod
    def of(cls, name: str, config: InstanceConfig) -> _Fixed:
        parallel = config.model.parallel
        model_bytes, model_mtime = gguf_file.size_and_mtime(config.model.path)
        return cls(
            config=config,
            names=frozenset((name, config.served_name, *config.extra_aliases)),
            alias=config.served_name,
            aliases=config.extra_aliases,
            variants=tuple(config.variants),
            base_url=connect_base_url(config),
            on_demand=config.on_demand,
            pinned=config.pinned,
            idle_ttl_s=config.idle_ttl_s,
            slots=parallel if parallel is not None and parallel > 0 else None,
            metrics=config.server.metrics,
            min_residency_s=config.min_residency_s,
            eviction_priority=config.eviction_priority,
            group=config.group,
            rewrite_body=rewriter(config.request_filters, config.variants),
            listed=not config.unlisted,
            model_bytes=model_bytes,
            model_mtime=model_mtime,
            memory_pool=footprint.pool_of(config),
        )


class MemoryHistory(Protocol):
    """Where the most each instance was seen holding is kept across daemon restarts (the Store)."""

    def learned_memory_peak(self, instance: str, fingerprint: str) -> int | None: ...

    def record_memory_peak(self, instance: str, fingerprint: str, size: int, at: float) -> None: ...


@dataclass(slots=True)
class _Memory:
    """What the directory knows of one instance's memory, for the config it was learned under."""

    config: InstanceConfig
    fingerprint: str  # config.footprint.fingerprint of that config
    estimate: int  # from the model file
    peak: int = 0  # the most it was read holding while up (resident size, or GPU memory)
    read_at: float = float("-inf")


class SupervisorDirectory:
    def __init__(
        self,
        supervisors: Mapping[str, InstanceSupervisor],
        clock: Callable[[], float] = time.monotonic,
        environ: Mapping[str, str] | None = None,
        retiring: Mapping[str, InstanceSupervisor] | None = None,
        gpu_bytes: Callable[[int], int | None] = lambda _pid: None,
        history: MemoryHistory | None = None,
        adopt: Callable[[], bool] = lambda: False,
    ) -> None:
        self.supervisors = supervisors  # the service's live dict: instances come and go
        # the service's adopt_new_configs: instances created since the configs were last applied
        # are routed to (and listed) as soon as `create` wrote them, and stopped ones take their
        # edited configs; looked for at most every second, at once for a model nothing serves
        # and before a start
        self._adopt = adopt
        self._adopt_at = float("-inf")
        # Removed instances still finishing their requests: no longer routed to or listed, but
        # their requests' ends must reach them, or the drain before their stop would never end.
        self.retiring: Mapping[str, InstanceSupervisor] = retiring if retiring is not None else {}
        self.clock = clock
        self.environ = environ
        self._last_used: dict[str, float] = {}
        self._key_files: dict[str, tuple[float, str | None]] = {}  # path -> (read at, key)
        self._configs: dict[str, _Fixed] = {}
        # With a memory budget set (gateway.ram_budget_gib / vram_budget_gib): each instance's
        # `memory_bytes`. Off, upstreams() reads no model file and no process for it.
        self.measure_memory = False
        self._memory: dict[str, _Memory] = {}
        self._gpu_bytes = gpu_bytes  # what a pid holds on the GPUs (daemon.gpu_memory), None when not known
        self._history = history

    def upstreams(self, model: str | None = None) -> list[Upstream]:
        now = self.clock()
        if now >= self._adopt_at:
            self._adopt_at = now + _ADOPT_EVERY_S
            self._adopt()
        out = self._snapshots(model, now)
        if not out and model is not None and self._adopt():
            out = self._snapshots(model, now)
        return out

    def _snapshots(self, model: str | None, now: float) -> list[Upstream]:
        out = []
        for name, sup in self.supervisors.items():
            fixed = self._fixed(name, sup.config)
            if model is not None and model not in fixed.names:
                continue
            rt = sup.rt
            state = rt.state
            up = state in _UP
            if up:
                self._last_used.setdefault(name, now)
            elif sup.in_flight == 0:
                self._last_used.pop(name, None)
            out.append(Upstream(
                name, fixed.alias, fixed.base_url, state,
                routable=state is S.READY and rt.probe_failures == 0,
                on_demand=fixed.on_demand,
                pinned=fixed.pinned,
                idle_ttl_s=fixed.idle_ttl_s,
                in_flight=sup.in_flight,
                last_used=self._last_used.get(name, 0.0),
                api_key=self._api_key(sup.config),
                slots=fixed.slots,
                metrics=fixed.metrics,
                restarts=rt.restarts,
                ready_in_s=None if up else sup.ready_in_s(),
                aliases=fixed.aliases,
                variants=fixed.variants,
                restarting=state is S.STOPPING and rt.after_stop == "restart",
                up_for_s=_up_for_s(sup) if up else None,
                min_residency_s=fixed.min_residency_s,
                eviction_priority=fixed.eviction_priority,
                group=fixed.group,
                rewrite_body=fixed.rewrite_body,
                listed=fixed.listed,
                model_bytes=fixed.model_bytes,
                model_mtime=fixed.model_mtime,
                model_path=fixed.config.model.path,
                memory_pool=fixed.memory_pool,
                memory_bytes=self._memory_bytes(name, sup, fixed, up, now) if self.measure_memory else 0,
            ))
        return out

    def counted_memory(self, name: str) -> int | None:
        """What the memory budgets count for `name` now (`upstreams()`'s memory_bytes); None
        without a budget (or an instance of that name)."""
        sup = self.supervisors.get(name)
        if not self.measure_memory or sup is None:
            return None
        return self._memory_bytes(name, sup, self._fixed(name, sup.config), sup.rt.state in _UP, self.clock())

    def _memory_bytes(self, name: str, sup: InstanceSupervisor, fixed: _Fixed, up: bool, now: float) -> int:
        """What the instance holds when loaded: its config's memory_gib; else, once it has been up
        under this config's fingerprint (now or in an earlier daemon: `history`), the most it was
        seen holding while up (not while loading, when it holds only part): its resident size on
        the CPU (prompt cache included), `gpu_bytes` of its pid on a GPU; else the estimate from
        its model file (config.footprint)."""
        config = fixed.config
        if (given := footprint.declared(config)) is not None:
            return given
        memory = self._memory.get(name)
        if memory is None or memory.config is not config:
            if memory is not None and memory.fingerprint == footprint.fingerprint(config):
                memory.config = config  # the same model, GPU and arguments (a new idle TTL, say): it holds
            else:
                memory = self._memory[name] = self._learn(name, config, fixed.model_bytes)
        child = sup.child
        if up and child is not None and now - memory.read_at >= _READ_EVERY_S:
            memory.read_at = now
            read = resident_bytes(child.pid) if fixed.memory_pool == "ram" else self._gpu_bytes(child.pid)
            if read is not None and read > memory.peak + _PEAK_STEP:
                memory.peak = read
                self._keep_peak(name, memory)
        return memory.peak or memory.estimate

    def _learn(self, name: str, config: InstanceConfig, model_bytes: int) -> _Memory:
        """What is known of `config`'s memory: its estimate, and the most an earlier run was seen
        holding (kept in the store across daemon restarts)."""
        estimate = footprint.estimate(config, gguf_file.facts(config.model.path), model_bytes).total
        memory = _Memory(config, footprint.fingerprint(config), estimate)
        if self._history is not None:
            with contextlib.suppress(StoreError):
                memory.peak = self._history.learned_memory_peak(name, memory.fingerprint) or 0
        return memory

    def _keep_peak(self, name: str, memory: _Memory) -> None:
        if self._history is not None:
            with contextlib.suppress(StoreError):
                self._history.record_memory_peak(name, memory.fingerprint, memory.peak, time.time())

    def _fixed(self, name: str, config: InstanceConfig) -> _Fixed:
        """What an instance's snapshots take from its config, made once per config (a reload
        brings a new config object): `upstreams()` runs on every request."""
        fixed = self._configs.get(name)
        if fixed is None or fixed.config is not config:
            fixed = self._configs[name] = _Fixed.of(name, config)
        return fixed

    def _api_key(self, config: InstanceConfig) -> str | None:
        server = config.server
        if server.api_key_env:
            env = os.environ if self.environ is None else self.environ
            return env.get(server.api_key_env) or None
        if server.api_key_file:
            now = self.clock()
            cached = self._key_files.get(server.api_key_file)
            if cached is not None and now - cached[0] < _KEY_FILE_RECHECK_S:
                return cached[1]
            key = None
            with contextlib.suppress(OSError):
                key = Path(server.api_key_file).read_text(encoding="utf-8").strip() or None
            self._key_files[server.api_key_file] = (now, key)
            return key
        return None

    def request_start(self, name: str, reason: str) -> None:
        sup = self.supervisors.get(name)
        if sup is not None and sup.child is None:
            self._adopt()  # a config edited since the last look: this start runs what the file says now
        if sup is not None:
            sup.submit(lc.Start(reason))

    def request_stop(self, name: str, reason: str) -> None:
        sup = self.supervisors.get(name)
        if sup is not None:
            sup.submit(lc.Stop(reason))

    async def wait_routable(self, name: str, timeout_s: float) -> bool:
        """True once ready with a passing probe; False on failure or timeout. A start just
        submitted may still read `stopped`, so only `failed` ends the wait early."""
        def verdict(sup: InstanceSupervisor | None) -> bool | None:
            if sup is None or sup.rt.state is S.FAILED:
                return False
            return True if sup.rt.state is S.READY and sup.rt.probe_failures == 0 else None

        return await self._wait(name, timeout_s, _READY_OR_FAILED, verdict)

    async def wait_stopped(self, name: str, timeout_s: float) -> bool:
        """True once its process is gone (`stopped` or `failed`, or the instance is removed). A stop
        just submitted may still read `ready`: that is waited out like any other state."""
        return await self._wait(
            name, timeout_s, _NO_PROCESS, lambda sup: True if sup is None or sup.rt.state in _NO_PROCESS else None
        )

    async def _wait(self, name: str, timeout_s: float, states: frozenset[InstanceState],
                    verdict: Callable[[InstanceSupervisor | None], bool | None]) -> bool:
        """Until `verdict` of the instance's supervisor is not None (woken by its moves into
        `states`, and every _RECHECK_S); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            sup = self.supervisors.get(name)
            found = verdict(sup)
            if found is not None:
                return found
            left = deadline - time.monotonic()
            if left <= 0 or sup is None:
                return False
            await sup.wait_for_state(states, min(left, _RECHECK_S))

    def begin_request(self, name: str) -> None:
        sup = self.supervisors.get(name)
        if sup is not None:
            sup.in_flight += 1
        self._last_used[name] = self.clock()

    def end_request(self, name: str, evidence: Evidence = None) -> None:
        sup = self.supervisors.get(name) or self.retiring.get(name)
        if sup is not None:
            if sup.in_flight > 0:
                sup.in_flight -= 1
            sup.note_traffic(evidence)
        self._last_used[name] = self.clock()
