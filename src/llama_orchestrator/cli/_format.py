"""Small renderings shared by the CLI's tables: coloured states; durations, sizes and timestamps
come from `llama_orchestrator.units` (shared with the dashboard) and are re-exported here."""

from __future__ import annotations

from llama_orchestrator.units import duration, size, timestamp

__all__ = ["STATE_STYLE", "duration", "size", "state", "timestamp"]

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


def state(name: str) -> str:
    """The state as a word (readable without colour), styled when colour is on."""
    style = STATE_STYLE.get(name, "")
    return f"[{style}]{name}[/]" if style else name
