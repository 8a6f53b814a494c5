"""Human-readable durations, sizes and times, shared by the CLI's tables and the dashboard (L0: stdlib only).

Both front ends show the same figures (uptime, RSS, event times); keeping the renderings here
means `llama-orch ps` and the dashboard never disagree on how "1h02m" or "201.0MiB" is spelled.
"""

from __future__ import annotations

import datetime as dt


def duration(seconds: float | None) -> str:
    """`45s`, `2m05s`, `1h02m`, `3d04h`: two units at most, so a column stays narrow; `-` when unknown."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def size(num: int | None) -> str:
    """Bytes in binary units: `512B`, `12KiB`, `201.0MiB`, `7.5GiB`; `-` when unknown."""
    if num is None:
        return "-"
    value = float(num)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f}{unit}" if unit != "MiB" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}GiB"


def timestamp(at: float) -> str:
    """A Unix time as local `YYYY-MM-DD HH:MM:SS`."""
    return dt.datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")


def clock(at: float) -> str:
    """A Unix time as local `HH:MM:SS` (recent events, where the date goes without saying)."""
    return dt.datetime.fromtimestamp(at).strftime("%H:%M:%S")
