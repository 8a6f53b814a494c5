"""The tasks that watch one child of an `InstanceSupervisor`: its health probes and its log's
loading progress. Each is bound to one child generation and only posts events to the
supervisor's queue; it reads the supervisor's state but never writes it (the supervisor is its
instance's one owner).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from llama_orchestrator.config.models import InstanceConfig
from llama_orchestrator.core import lifecycle as lc
from llama_orchestrator.core.classify import is_loading_progress
from llama_orchestrator.core.probing import deep_probe_timeout, probe_period, probe_timeout
from llama_orchestrator.core.states import InstanceState
from llama_orchestrator.core.traffic_health import busy_slots, canary_request
from llama_orchestrator.engine import ChildProcess, follow, port_holder
from llama_orchestrator.health.connection import KEEPALIVE_MAX_INTERVAL_S, ProbeConnection
from llama_orchestrator.health.result import ProbeResult

if TYPE_CHECKING:
    from llama_orchestrator.daemon.supervisor import InstanceSupervisor

S = InstanceState
PROGRESS_THROTTLE_S = 1.0


async def probe_child(sup: InstanceSupervisor, child: ChildProcess, generation: int) -> None:
    """Probe on a start-to-start schedule (`core.probing`), so a hung child (each probe timing
    out) is caught by the schedule, not late by threshold × (interval + timeout)."""
    base_url = sup.config.server.base_url
    connection = ProbeConnection(base_url)  # this child's own: closed when cancelled
    try:
        await _probe_schedule(sup, child, generation, base_url, connection)
    finally:
        connection.close()


async def _probe_schedule(
    sup: InstanceSupervisor, child: ChildProcess, generation: int, base_url: str, connection: ProbeConnection
) -> None:
    loop = asyncio.get_running_loop()
    prober, monotonic = sup.deps.prober, sup.deps.monotonic
    last_deep = monotonic()
    next_at = spawned_at = loop.time()
    failed = False
    while True:
        health = sup.config.health
        starting = sup.rt.state is S.STARTING
        period = probe_period(health, starting=starting, last_failed=failed, age_s=next_at - spawned_at)
        next_at += period
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        next_at = max(next_at, loop.time() - health.interval_s)  # never try to catch up a backlog
        # Keep the connection only while the server would not have closed it by the next probe.
        keep = connection if period < KEEPALIVE_MAX_INTERVAL_S else None
        if keep is None:
            connection.close()
        timeout = probe_timeout(health, starting=starting, last_failed=failed)
        result = await prober.health(base_url, timeout, sup.api_key(), keep)
        failed = not result.ok
        if result.ok and sup.rt.state is S.STARTING:
            # The socket scan is slow with many processes: keep it off the event loop.
            impostor = await asyncio.to_thread(port_impostor, sup.config, child)
            if impostor:
                sup.post(generation, lc.Impostor(impostor))
                return
        if result.ok and health.deep_probe != "off" and sup.in_flight == 0 and sup.rt.state is S.READY:
            now = monotonic()
            if sup.traffic.deep_probe_due(last_deep, now, health.deep_interval_s):
                last_deep = now
                if health.deep_probe == "slots":
                    result = await prober.slots(base_url, deep_probe_timeout(health), sup.api_key())
                else:
                    result = await canary(sup)
                if not result.ok:
                    result = replace(result, detail=f"deep probe ({health.deep_probe}): {result.detail}")
        if result.ok and sup.rt.state is S.READY and sup.rt.probe_failures == 0:
            continue  # decide() would change nothing: leave the supervisor asleep (CPU at scale)
        sup.post(generation, lc.Probe(result.ok, result.detail))


async def confirm_by_canary(sup: InstanceSupervisor, generation: int) -> None:
    """Gateway requests kept failing while /health passed: try the smallest request of the
    server's kind, and post the verdict (core.traffic_health)."""
    failures = sup.traffic.describe()
    busy = sup.in_flight  # requests still running hold slots: the canary may wait behind them
    result = await canary(sup)
    held = ""
    if result.timed_out:
        if busy:
            held = f"{busy} other request(s) held slots"
        elif slots := await busy_elsewhere(sup):  # clients that call llama-server directly
            held = f"{slots} slot(s) were busy with requests that did not come through the gateway"
    if result.ok:
        detail = f"{failures}, but a one-token request passed: kept running"
    elif held:
        detail = f"{failures}; a one-token request got {result.detail} while {held} (busy, not judged): kept running"
    else:
        detail = f"{failures}, and a one-token request failed too: {result.detail}"
    sup.post(generation, lc.Canary(result.ok or bool(held), detail))


async def busy_elsewhere(sup: InstanceSupervisor) -> int:
    """Slots llama-server's `/slots` says are processing (0 when it does not say)."""
    config = sup.config
    answer = await sup.deps.prober.slots_answer(config.server.base_url, config.health.timeout_s, sup.api_key())
    return (busy_slots(answer) or 0) if answer is not None else 0


async def canary(sup: InstanceSupervisor) -> ProbeResult:
    config = sup.config
    path, body = canary_request(config.model.embeddings, config.args)
    return await sup.deps.prober.post(config.server.base_url, path, body, deep_probe_timeout(config.health),
                                      sup.api_key())


async def watch_progress(sup: InstanceSupervisor, generation: int) -> None:
    """While starting, turn loading-progress lines in the log into Progress events (at most one
    a second). The supervisor cancels it as soon as the instance leaves `starting`: a follower
    left running polls the file several times a second for nothing."""
    last_event = 0.0
    async for line in follow(sup.log_path, from_end_lines=0):
        if sup.rt.state is not S.STARTING:
            continue
        now = sup.deps.monotonic()
        if is_loading_progress(line) and now - last_event >= PROGRESS_THROTTLE_S:
            last_event = now
            sup.post(generation, lc.Progress())


def port_impostor(config: InstanceConfig, child: ChildProcess) -> str | None:
    """After the first good probe, prove the answering server is our child (SO_REUSEADDR on Windows)."""
    holder = port_holder(config.server.host, config.server.port)
    if holder is None or holder.pid is None or holder.pid == child.pid:
        return None
    with contextlib.suppress(psutil.Error):
        ours = {p.pid for p in psutil.Process(child.pid).children(recursive=True)}
        if holder.pid in ours:
            return None
    return f"port {config.server.port} is answered by pid {holder.pid} ({holder.name}), not by our child"


def server_api_key(config: InstanceConfig, environ: dict[str, str]) -> str | None:
    """The key this instance's llama-server expects from clients, if it has one."""
    server = config.server
    if server.api_key_env:
        return environ.get(server.api_key_env)
    if server.api_key_file:
        with contextlib.suppress(OSError):
            return Path(server.api_key_file).read_text(encoding="utf-8").strip() or None
    return None
