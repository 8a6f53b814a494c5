"""The fleet table's content as plain data: which columns fit, each cell's text, the filter.

No widgets here, so the layout rules (what degrades first on a narrow terminal) and the cell
renderings are easy to test and cheap to compute for a hundred rows. States are always spelled
out as words, so nothing depends on colour (NO_COLOR, monochrome terminals, screen readers).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from llama_orchestrator.core.states import STATE_STYLE
from llama_orchestrator.daemon.protocol import InstanceStatus
from llama_orchestrator.units import duration, size


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    width: int
    priority: int  # 0 always shown; higher numbers are dropped first when the terminal is narrow


COLUMNS: tuple[Column, ...] = (
    Column("name", "NAME", 18, 0),
    Column("state", "STATE", 11, 0),
    Column("port", "PORT", 5, 1),
    Column("uptime", "UPTIME", 7, 1),
    Column("restarts", "RST", 3, 2),
    Column("cpu", "CPU%", 5, 2),
    Column("rss", "RSS", 8, 2),
    Column("busy", "BUSY", 4, 3),
    Column("tokens", "TOK/S", 5, 4),  # only with server.metrics on; dropped with ALIAS below ~100 cells
    Column("alias", "ALIAS", 16, 4),
    Column("backend", "BACKEND", 7, 5),
    Column("error", "LAST ERROR", 24, 6),
)

CELL_GAP = 2  # the table pads each cell with one space either side


def columns_for(width: int) -> tuple[Column, ...]:
    """The columns that fit `width` cells, keeping table order and dropping low priorities first."""
    chosen = list(COLUMNS)
    for priority in sorted({c.priority for c in COLUMNS}, reverse=True):
        if _needed(chosen) <= width or priority == 0:
            break
        chosen = [c for c in chosen if c.priority < priority]
    return tuple(chosen)


def _needed(columns: list[Column]) -> int:
    return sum(c.width + CELL_GAP for c in columns)


def state_text(state: str, changed: bool = False) -> Text:
    """The state in its colour; `ready*` when the config changed since the process started."""
    return Text(state + ("*" if changed else ""), style=STATE_STYLE.get(state, ""))


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def tokens_per_s(value: float | None) -> str:
    """Generated tokens per second in at most 5 cells ("-" when the instance exports no metrics)."""
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.1f}"
    return f"{value:.0f}" if value < 99_999.5 else f"{value / 1000:.0f}k"


def cell(column: str, s: InstanceStatus) -> str | Text:
    """One cell of an instance's row (uncropped: the table crops to the column width)."""
    if column == "name":
        return s.name
    if column == "state":
        return state_text(s.state, bool(s.changed))
    if column == "port":
        return str(s.port)
    if column == "uptime":
        return duration(s.uptime_s) if s.state not in ("stopped", "failed") else "-"
    if column == "restarts":
        return str(s.restarts)
    if column == "cpu":
        return percent(s.cpu_percent)
    if column == "rss":
        return size(s.rss_bytes)
    if column == "busy":
        return str(s.in_flight)
    if column == "tokens":
        return tokens_per_s(s.tokens_per_s)
    if column == "alias":
        return s.alias
    if column == "backend":
        return s.backend
    if column == "error":
        return Text(_one_line(s.last_error or ""), style="red")
    raise KeyError(column)


def row(columns: tuple[Column, ...], s: InstanceStatus) -> tuple[str | Text, ...]:
    return tuple(cell(c.key, s) for c in columns)


def matches(s: InstanceStatus, needle: str) -> bool:
    """The `/` filter: a case-insensitive substring of the name, alias, state, backend or model."""
    if not needle:
        return True
    needle = needle.lower()
    return any(needle in field.lower() for field in (s.name, s.alias, s.state, s.backend, s.model))


def _one_line(text: str) -> str:
    return " ".join(text.split())
