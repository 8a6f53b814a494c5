"""Small renderings shared by the CLI's tables: durations, sizes, timestamps, coloured states."""

from __future__ import annotations

import datetime as dt

STATE_STYLE = {
    "ready": "green",
    "starting": "cyan",
    "reconciling": "cyan",
    "unhealthy": "yellow",
    "backoff": "yellow",
    "stopping": "magenta",
    "failed": "bold red",
    "stopped": "dim",
}


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def size(num: int | None) -> str:
    if num is None:
        return "-"
    value = float(num)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f}{unit}" if unit in ("B", "KiB") else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}GiB"


def timestamp(at: float) -> str:
    return dt.datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")


def state(name: str) -> str:
    """The state as a word (readable without colour), styled when colour is on."""
    style = STATE_STYLE.get(name, "")
    return f"[{style}]{name}[/]" if style else name
