"""Small renderings shared by the CLI's tables: coloured states; durations, sizes and timestamps
come from `llama_orchestrator.units` (shared with the dashboard) and are re-exported here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llama_orchestrator.core.states import STATE_STYLE
from llama_orchestrator.units import duration, size, timestamp

if TYPE_CHECKING:
    from rich.text import Text

__all__ = ["STATE_STYLE", "columns", "duration", "size", "state", "timestamp"]



def columns(headers: list[str], rows: list[list[str]], *, width: int | None, styled: int | None = None,
            keep_end: bool = False) -> Text:
    """An aligned text table; the last column gets what width is left and is cut with '…' (at
    its start with `keep_end`: a path's file name is what tells rows apart). Width None (the
    output is not a terminal, but a pipe or a file): nothing is cut.

    Built by hand rather than with rich.Table: measuring and padding every cell through Rich took
    ~150 ms for 100 rows, half of `llama-orch ps`'s budget. Column `styled` is coloured by state.
    """
    from rich.text import Text

    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers[:-1])]
    fixed = sum(widths) + 2 * len(widths)
    last_width = max(width - fixed, 20) if width is not None else None
    text = Text(no_wrap=True, overflow="ignore")
    for index, cells in enumerate([headers, *rows]):
        for column, cell in enumerate(cells[:-1]):
            state = cell.rstrip("*")  # `ready*`: its config changed since it started
            style = STATE_STYLE.get(state, "") if index and column == styled else ("bold" if not index else "")
            text.append(cell.ljust(widths[column]), style=style)
            text.append("  ")
        last = cells[-1]
        if last_width is not None and len(last) > last_width:
            last = "…" + last[len(last) - last_width + 1:] if keep_end else last[: last_width - 1] + "…"
        text.append(last)
        if index < len(rows):
            text.append("\n")
    return text


def state(name: str) -> str:
    """The state as a word (readable without colour), styled when colour is on."""
    style = STATE_STYLE.get(name, "")
    return f"[{style}]{name}[/]" if style else name
