"""The daemon's gateway: started with the daemon, where a failure is reported and never fatal;
tried again at each command that applies the configs while it could not start; given
orchestrator.json's settings again at each of them; described for `status`.

    host = GatewayHost(service, gpu, store)
    await host.start(config)         # host.gateway: the Gateway, or None (host.info() says why)
    host.reconfigure(config)         # keys, limits, certificate: what applies without a restart
    await host.start_if_down(config) # a port freed since, say
"""

from __future__ import annotations

import logging
from typing import Protocol

from llama_orchestrator.config.orchestrator import GatewayConfig
from llama_orchestrator.daemon.directory import MemoryHistory, SupervisorDirectory
from llama_orchestrator.daemon.gpu_memory import GpuMemory
from llama_orchestrator.daemon.preflight import gateway_start_problem
from llama_orchestrator.daemon.protocol import GatewayInfo
from llama_orchestrator.daemon.supervisor import InstanceSupervisor
from llama_orchestrator.errors import OrchestratorError
from llama_orchestrator.gateway.errors import KeysUnreadable
from llama_orchestrator.gateway.server import Gateway

logger = logging.getLogger(__name__)


class HasSupervisors(Protocol):
    @property
    def supervisors(self) -> dict[str, InstanceSupervisor]: ...

    @property
    def retiring(self) -> dict[str, InstanceSupervisor]: ...

    def adopt_new_configs(self) -> bool: ...


class GatewayHost:
    def __init__(self, service: HasSupervisors, gpu: GpuMemory, history: MemoryHistory | None) -> None:
        self.service = service
        self.gpu = gpu
        self.history = history  # where what instances held is kept (the daemon's Store)
        self.gateway: Gateway | None = None
        self._info = GatewayInfo(enabled=False)
        self._restart_pending: list[str] = []  # settings changed that only a daemon restart applies
        self._settings_error: str | None = None  # why orchestrator.json's settings were not applied last time

    async def start(self, config: GatewayConfig) -> None:
        """Build the directory over the service's supervisors and start the gateway (unless disabled)."""
        if not config.enabled:
            return
        service = self.service
        directory = SupervisorDirectory(service.supervisors, retiring=service.retiring, history=self.history,
                                        gpu_bytes=self.gpu.process_bytes, adopt=service.adopt_new_configs)
        directory.measure_memory = bool(config.memory_budgets)
        gateway = Gateway(config, directory, gpu_memory=self.gpu.figures)
        try:
            await gateway.start()
        except OrchestratorError as exc:
            problem = gateway_start_problem(exc, config.host, config.port)
            logger.error("gateway not started: %s", problem)
            self._info = GatewayInfo(enabled=True, error=problem)
            return
        self.gateway = gateway
        self._info = GatewayInfo(enabled=True, address=gateway.address)
        self._settings_error = None

    async def start_if_down(self, config: GatewayConfig) -> None:
        """Try again a gateway that could not start: fixing orchestrator.json or freeing the port
        needs no daemon restart."""
        if self.gateway is None and self._info.error is not None:
            await self.start(config)

    def reconfigure(self, config: GatewayConfig) -> None:
        """Apply `config` to the running gateway, logging what happened; the settings only a
        daemon restart applies are logged once (when they differ from the last time). Settings it
        cannot apply (keys or a certificate it cannot read) are kept for `info` until applied, so
        that `up` says it: a key removed from the keys file stays valid meanwhile."""
        gateway = self.gateway
        if gateway is None:
            return
        before = (gateway.config, gateway.keys)
        try:
            restart = gateway.reconfigure(config)
        except OrchestratorError as exc:
            logger.error("gateway settings not applied, the running ones stay: %s", exc)
            self._settings_error = not_applied(exc)
            return
        self._settings_error = None
        if (directory := self.directory()) is not None:
            directory.measure_memory = bool(gateway.config.memory_budgets)
        if (gateway.config, gateway.keys) != before:
            logger.info("gateway settings applied from orchestrator.json")
        if restart != self._restart_pending:
            for name in restart:
                logger.warning("gateway.%s changed in orchestrator.json: only a daemon restart applies it "
                               "(llama-orch daemon stop --keep-instances; llama-orch daemon start)", name)
        self._restart_pending = restart

    def info(self) -> GatewayInfo:
        """Where it listens, or why not; whether it refuses requests (its keys unreadable: live)."""
        refusing = self.gateway.refusing if self.gateway is not None else None
        return self._info.model_copy(update={"refusing": refusing, "restart_pending": list(self._restart_pending),
                                             "settings_error": self._settings_error})

    def directory(self) -> SupervisorDirectory | None:
        directory = self.gateway.traffic.directory if self.gateway is not None else None
        return directory if isinstance(directory, SupervisorDirectory) else None

    def counted_memory(self, name: str) -> int | None:
        """What the memory budgets count for `name` (`ps`); None without a budget or a gateway."""
        directory = self.directory()
        return None if directory is None else directory.counted_memory(name)

    async def stop(self) -> None:
        if self.gateway is not None:
            await self.gateway.stop()


def not_applied(exc: OrchestratorError) -> str:
    """Why orchestrator.json's gateway settings were not applied, what the gateway runs with
    meanwhile, and the fix."""
    kept = (", the API keys it read before among them (a key removed since stays valid)"
            if isinstance(exc, KeysUnreadable) else " (its API keys, TLS certificate, limits, timeouts and origins)")
    fix = f"; {exc.hint}" if exc.hint else ""
    return (f"orchestrator.json's gateway settings were not applied: {exc}; the gateway runs on with "
            f"the settings it had{kept}{fix}")
