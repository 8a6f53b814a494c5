"""Generation speed and busy slots of each ready instance, from llama-server's `/metrics`.

Every `METRICS_EVERY_S` the sampler GETs `/metrics` of each READY instance started with
`server.metrics: true` (one shared aiohttp session, no kept connections, the instance's API
key when it has one) and turns the `llamacpp:tokens_predicted_total` counter into generated
tokens per second between consecutive samples; `llamacpp:requests_processing` is the busy slots.
A new pid (restart, adoption) or a counter going backwards starts the rate afresh. `ps` and the
dashboard read the last figures through `Daemon.statuses()`; no request ever waits for a fetch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import aiohttp

from llama_orchestrator.core.states import InstanceState
from llama_orchestrator.daemon.supervisor import InstanceSupervisor

METRICS_EVERY_S = 2.0
METRICS_TIMEOUT_S = 1.5


# ---- parsing (pure) ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Counters:
    """The llama.cpp figures we use from one `/metrics` answer (None when a family is absent)."""

    tokens_predicted: float | None = None
    prompt_tokens: float | None = None
    requests_processing: float | None = None


_FAMILIES = {
    "llamacpp:tokens_predicted_total": "tokens_predicted",
    "llamacpp:prompt_tokens_total": "prompt_tokens",
    "llamacpp:requests_processing": "requests_processing",
}


def parse_metrics(text: str) -> Counters:
    """Read the llama.cpp counters from Prometheus text (labels, if any, are ignored; samples summed)."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "{" in line:  # name{labels} value [timestamp]
            name, rest = line[: line.index("{")], line[line.rindex("}") + 1 :]
        else:
            name, _, rest = line.partition(" ")
        field = _FAMILIES.get(name.strip())
        if field is None:
            continue
        parts = rest.split()
        if not parts:
            continue
        try:
            value = float(parts[0])
        except ValueError:
            continue
        if value != value:  # NaN
            continue
        values[field] = values.get(field, 0.0) + value
    return Counters(**values)


def rate(previous: float, previous_at: float, current: float, current_at: float) -> float | None:
    """Per-second increase of a counter between two samples; None when it cannot be told (reset, no time)."""
    elapsed = current_at - previous_at
    if elapsed <= 0 or current < previous:
        return None
    return (current - previous) / elapsed


# ---- sampling ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Target:
    """One instance to sample: where its server answers and how to authenticate."""

    name: str
    pid: int
    base_url: str
    api_key: str | None


@dataclass(frozen=True, slots=True)
class Throughput:
    tokens_per_s: float | None = None
    busy_slots: int | None = None


@dataclass(slots=True)
class _Track:
    pid: int
    at: float
    predicted: float | None
    figures: Throughput


class MetricsSampler:
    """Keeps the last tokens/s and busy slots per instance; `run()` is the daemon's background task."""

    def __init__(
        self,
        targets: Callable[[], Iterable[Target]],
        *,
        session: aiohttp.ClientSession | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._targets = targets
        self._session = session
        self._owned = session is None
        self._monotonic = monotonic
        self._tracks: dict[str, _Track] = {}

    def reading(self, name: str, pid: int | None) -> Throughput:
        """The last figures of `name` if they belong to its current process, else nothing known."""
        track = self._tracks.get(name)
        if track is None or pid is None or track.pid != pid:
            return Throughput()
        return track.figures

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += METRICS_EVERY_S
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at = max(next_at, loop.time())
            await self.sample_once()

    async def sample_once(self) -> None:
        targets = list(self._targets())
        live = {t.name for t in targets}
        for name in [n for n in self._tracks if n not in live]:
            del self._tracks[name]
        texts = await asyncio.gather(*(self._fetch(t) for t in targets))
        now = self._monotonic()
        for target, text in zip(targets, texts, strict=True):
            self._update(target, None if text is None else parse_metrics(text), now)

    def _update(self, target: Target, counters: Counters | None, now: float) -> None:
        track = self._tracks.get(target.name)
        if counters is None:  # no answer this time: keep the figures of this process, they age out
            if track is not None and track.pid != target.pid:
                del self._tracks[target.name]
            return
        busy = None if counters.requests_processing is None else int(counters.requests_processing)
        speed: float | None = None
        if track is not None and track.pid == target.pid and track.predicted is not None \
                and counters.tokens_predicted is not None:
            speed = rate(track.predicted, track.at, counters.tokens_predicted, now)
        self._tracks[target.name] = _Track(target.pid, now, counters.tokens_predicted, Throughput(speed, busy))

    async def _fetch(self, target: Target) -> str | None:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, limit=0))
        headers = {"Authorization": f"Bearer {target.api_key}"} if target.api_key else {}
        timeout = aiohttp.ClientTimeout(total=METRICS_TIMEOUT_S)
        try:
            async with self._session.get(f"{target.base_url}/metrics", headers=headers, timeout=timeout) as resp:
                if resp.status != 200:
                    return None
                return await resp.text()
        except (aiohttp.ClientError, TimeoutError, OSError):
            return None

    async def close(self) -> None:
        if self._owned and self._session is not None:
            await self._session.close()
            self._session = None


def targets_from(supervisors: Iterable[InstanceSupervisor]) -> list[Target]:
    """The READY instances with `server.metrics` on, from the daemon's supervisors."""
    out = []
    for sup in supervisors:
        child = sup.child
        server = sup.config.server
        if child is None or not server.metrics or sup.state is not InstanceState.READY:
            continue
        out.append(Target(sup.name, child.pid, server.base_url, sup.api_key()))
    return out
