"""Generation speed and busy slots of each ready instance, from llama-server's `/metrics`; GPU memory.

Every `METRICS_EVERY_S` the sampler GETs `/metrics` of each READY instance started with
`server.metrics: true` (one shared aiohttp session, no kept connections, the instance's API
key when it has one) and turns the `llamacpp:tokens_predicted_total` counter into generated
tokens per second between consecutive samples; `llamacpp:requests_processing` is the busy slots.
A new pid (restart, adoption) or a counter going backwards starts the rate afresh. `ps` and the
dashboard read the last figures through `Daemon.statuses()`; no request ever waits for a fetch.

GPU memory comes from `nvidia-smi` (NVIDIA only), run in a thread at most every
`GPU_EVERY_S` with a short timeout: used and total per GPU, and what each process holds (the
gateway's `vram_budget_gib` counts an instance's largest reading; Windows drivers in WDDM mode
answer `[N/A]` per process, and then the budget keeps its estimate). Vulkan and AMD GPUs have
no equally cheap, portable query (rocm-smi is not always installed, Vulkan has none), so they
report nothing: `None`, shown as absent, rather than a guess.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import aiohttp

from llama_orchestrator.core.states import InstanceState
from llama_orchestrator.daemon.supervisor import InstanceSupervisor

METRICS_EVERY_S = 2.0
METRICS_TIMEOUT_S = 1.5
GPU_EVERY_S = 5.0
GPU_TIMEOUT_S = 2.0
NVIDIA_SMI_ARGS = ("--query-gpu=memory.used,memory.total", "--format=csv,noheader,nounits")
NVIDIA_SMI_APPS_ARGS = ("--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits")


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


def nvidia_smi_figures(output: str) -> list[tuple[float, float]] | None:
    """`nvidia-smi --query-gpu=memory.used,memory.total --format=csv,noheader,nounits` as (used, total)
    MiB per GPU, in its order; None when unreadable."""
    figures = []
    for line in output.splitlines():
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 2:
            return None
        try:
            figures.append((float(fields[0]), float(fields[1])))
        except ValueError:
            return None
    return figures or None


def nvidia_smi_processes(output: str) -> dict[int, float]:
    """`nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits` as MiB per pid,
    summed over GPUs; lines it cannot read (`[N/A]` under Windows' WDDM) are left out."""
    used: dict[int, float] = {}
    for line in output.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 2:
            continue
        try:
            pid, mib = int(fields[0]), float(fields[1])
        except ValueError:
            continue
        used[pid] = used.get(pid, 0.0) + mib
    return used


def describe_gpu_memory(figures: Sequence[tuple[float, float]] | None) -> str | None:
    """(used, total) MiB per GPU as "1.2/8.0 GiB", or "1.2/8.0, 0.3/24.0 GiB" for several."""
    if not figures:
        return None
    return ", ".join(f"{used / 1024:.1f}/{total / 1024:.1f}" for used, total in figures) + " GiB"


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


class GpuMemory:
    """`nvidia-smi`'s used/total memory and each process's share, refreshed at most every
    `GPU_EVERY_S`; None without nvidia-smi."""

    def __init__(self, environ: Mapping[str, str], *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._environ = dict(environ)
        self._monotonic = monotonic
        self._binary = shutil.which("nvidia-smi", path=self._environ.get("PATH"))
        self._value: list[tuple[float, float]] | None = None
        self._processes: dict[int, float] = {}
        self._at: float | None = None
        self._task: asyncio.Future[_Reading] | None = None

    def current(self) -> str | None:
        """The last reading in words ("1.2/8.0 GiB"); see `figures`."""
        return describe_gpu_memory(self.figures())

    def figures(self) -> list[tuple[float, float]] | None:
        """The last reading, (used, total) MiB per GPU; starts a refresh in a thread when it is
        older than `GPU_EVERY_S`.

        Called from `Daemon.status()` and the gateway's `/metrics`: nvidia-smi only runs while
        someone is looking (the dashboard asks about once a second), and the answer never waits
        for it."""
        if self._binary is None:
            return None
        now = self._monotonic()
        if self._task is None and (self._at is None or now - self._at >= GPU_EVERY_S):
            self._at = now
            self._task = asyncio.ensure_future(asyncio.to_thread(self._query, self._binary))
            self._task.add_done_callback(self._store)
        return self._value

    def process_bytes(self, pid: int) -> int | None:
        """What process `pid` held on the GPUs at the last reading (refreshed as `figures` is);
        None when nvidia-smi did not list it or there is none."""
        self.figures()
        mib = self._processes.get(pid)
        return None if mib is None else int(mib * 2**20)

    def _store(self, task: asyncio.Future[_Reading]) -> None:
        self._task = None
        if not task.cancelled():
            self._value, self._processes = task.result()

    async def close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _query(self, binary: str) -> _Reading:
        figures = self._run(binary, NVIDIA_SMI_ARGS)
        if figures is None:
            return None, {}
        processes = self._run(binary, NVIDIA_SMI_APPS_ARGS)
        return nvidia_smi_figures(figures), {} if processes is None else nvidia_smi_processes(processes)

    def _run(self, binary: str, args: tuple[str, ...]) -> str | None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            proc = subprocess.run(
                [binary, *args],
                env=self._environ,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=GPU_TIMEOUT_S,
                check=False,
            )
            if proc.returncode == 0:
                return proc.stdout
        return None


_Reading = tuple[list[tuple[float, float]] | None, dict[int, float]]
