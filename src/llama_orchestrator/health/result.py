"""What one probe of a llama-server found (every probe returns one; none raises for network trouble)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    status: int | None
    detail: str
    latency_s: float
    loading: bool = False
    timed_out: bool = False  # no answer within the timeout (a busy server may just be slow)
