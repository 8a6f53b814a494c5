"""`FleetTable`: the dashboard's table of instances, one row per instance, redrawn row by row.

Why not Textual's `DataTable`: it drops its whole render cache on any cell update, so a refresh
that moves one figure in each of a hundred rows redraws every visible cell (70-140 ms). Here each
row's rendered line (a `Strip`) is cached with the cell values it was drawn from; a refresh
compares the new values with the cached ones and repaints only the lines whose values changed.
Unchanged rows cost a tuple comparison; scrolling and cursor moves reuse the cached lines.

Line 0 is the column header and stays put; rows scroll beneath it. The cursor row is marked with
`▶` as well as its colour, so the selection reads on a monochrome terminal (NO_COLOR) too. Keys:
↑ ↓, PgUp/PgDn, Home/End; a click selects a row. `Highlighted` is posted whenever the instance
under the cursor changes (a keypress, a click, or the rows changing under it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from llama_orchestrator.daemon.protocol import InstanceStatus
from llama_orchestrator.tui import fleet

Cells = tuple[str | Text, ...]
CURSOR_MARK = "▶"


class FleetTable(ScrollView, can_focus=True):
    """One row per instance (in the order given to `show`); the columns follow the terminal's width."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,ctrl+home", "first", "First", show=False),
        Binding("end,ctrl+end", "last", "Last", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {"fleet-table--header", "fleet-table--cursor"}

    DEFAULT_CSS = """
    FleetTable {
        width: 1fr;
        background: $surface;
        color: $foreground;
        overflow-x: hidden;
        & > .fleet-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        &:ansi > .fleet-table--header {
            background: ansi_bright_blue;
            color: ansi_default;
        }
        & > .fleet-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus > .fleet-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
    }
    """

    class Highlighted(Message):
        """The instance under the cursor changed."""

        def __init__(self, table: FleetTable, name: str) -> None:
            super().__init__()
            self.table = table
            self.name = name

        @property
        def control(self) -> FleetTable:
            return self.table

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.shown: tuple[fleet.Column, ...] = ()
        self._widths: tuple[int, ...] = ()
        self._order: list[str] = []
        self._index: dict[str, int] = {}
        self._cells: dict[str, Cells] = {}
        self._strips: dict[str, tuple[tuple[object, ...], Strip]] = {}  # name -> (what it was drawn from, line)
        self._cursor = 0
        self._announced: str | None = None

    # ---- what the app and the tests read -------------------------------------------------
    @property
    def row_count(self) -> int:
        return len(self._order)

    @property
    def cursor_row(self) -> int:
        return self._cursor

    @property
    def selected_name(self) -> str | None:
        return self._order[self._cursor] if 0 <= self._cursor < len(self._order) else None

    def rows_text(self) -> list[list[str]]:
        """Every row's cells as plain text, in order (what a user reads, colour aside)."""
        return [[c.plain if isinstance(c, Text) else c for c in self._cells[name]] for name in self._order]

    # ---- updates -------------------------------------------------------------------------
    def show(self, rows: Iterable[InstanceStatus], width: int) -> None:
        """Make the table show `rows` (in order) with the columns that fit `width` terminal cells."""
        rows = list(rows)
        columns = fleet.columns_for(width)
        spare = max(0, width - sum(c.width + fleet.CELL_GAP for c in columns) - 2)  # 2: room for a scrollbar
        widths = tuple(c.width + (spare if c.key == "error" else 0) for c in columns)
        if columns != self.shown or widths != self._widths:
            self.shown, self._widths = columns, widths
            self._strips.clear()
            self.refresh()
        names = [s.name for s in rows]
        if names != self._order:
            self._reorder(names)
            self._cells = {s.name: fleet.row(self.shown, s) for s in rows}
            self.refresh()
        else:
            for s in rows:
                cells = fleet.row(self.shown, s)
                if _same(cells, self._cells[s.name]):
                    continue
                self._cells[s.name] = cells
                self._refresh_row(self._index[s.name])
        self._announce()

    def set_state(self, name: str, state: str) -> None:
        """Show a streamed transition at once, before the next full refresh fills in the rest."""
        keys = [c.key for c in self.shown]
        if name not in self._cells or "state" not in keys:
            return
        cells = list(self._cells[name])
        cells[keys.index("state")] = fleet.state_text(state)
        self._cells[name] = tuple(cells)
        self._refresh_row(self._index[name])

    def _reorder(self, names: list[str]) -> None:
        selected = self.selected_name
        self._order = names
        self._index = {name: i for i, name in enumerate(names)}
        for gone in self._strips.keys() - self._index.keys():
            del self._strips[gone]
        self._cursor = self._index.get(selected, 0) if selected is not None else 0
        self.virtual_size = Size(0, len(names) + 1)
        self._scroll_to_cursor()

    # ---- the cursor ----------------------------------------------------------------------
    def move_cursor(self, row: int) -> None:
        row = max(0, min(row, len(self._order) - 1))
        if row != self._cursor:
            self._refresh_row(self._cursor)
            self._cursor = row
            self._refresh_row(row)
        self._scroll_to_cursor()
        self._announce()

    def action_cursor_up(self) -> None:
        self.move_cursor(self._cursor - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(self._cursor + 1)

    def action_page_up(self) -> None:
        self.move_cursor(self._cursor - self._page())

    def action_page_down(self) -> None:
        self.move_cursor(self._cursor + self._page())

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(len(self._order) - 1)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y == 0:  # outside the rows, or the header
            return
        row = int(self.scroll_y) + offset.y - 1
        if 0 <= row < len(self._order):
            self.focus()
            self.move_cursor(row)
            event.stop()

    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - 2)

    def _scroll_to_cursor(self) -> None:
        visible = max(1, self.scrollable_content_region.height - 1)
        top = int(self.scroll_y)
        if self._cursor < top:
            self.scroll_to(y=self._cursor, animate=False, force=True)
        elif self._cursor >= top + visible:
            self.scroll_to(y=self._cursor - visible + 1, animate=False, force=True)

    def _announce(self) -> None:
        name = self.selected_name
        if name != self._announced:
            self._announced = name
            if name is not None:
                self.post_message(self.Highlighted(self, name))

    # ---- rendering -----------------------------------------------------------------------
    def _refresh_row(self, row: int) -> None:
        """Repaint one row's line, if it is on screen."""
        y = row + 1 - int(self.scroll_y)
        if 1 <= y < self.size.height:
            self.refresh(Region(0, y, self.size.width, 1))

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        if y == 0:
            return self._header(width, base)
        row = int(self.scroll_y) + y - 1
        if not 0 <= row < len(self._order):
            return Strip.blank(width, base)
        strip = self._row_strip(self._order[row], width, base)
        if row != self._cursor:
            return strip
        cursor = self.get_component_rich_style("fleet-table--cursor")
        marked = Strip([Segment(CURSOR_MARK, base + cursor), *strip.crop(1).apply_style(base + cursor)])
        return marked.simplify()

    def _header(self, width: int, base: Style) -> Strip:
        style = base + self.get_component_rich_style("fleet-table--header")
        labels = tuple(Text(c.label) for c in self.shown)
        return self._line(labels, width, style)

    def _row_strip(self, name: str, width: int, base: Style) -> Strip:
        cells = self._cells[name]
        key = (_key(cells), width, base)
        cached = self._strips.get(name)
        if cached is not None and cached[0] == key:
            return cached[1]
        strip = self._line(cells, width, base)
        self._strips[name] = (key, strip)
        return strip

    def _line(self, cells: Cells, width: int, style: Style) -> Strip:
        parts: list[Text | str] = []
        for value, column_width in zip(cells, self._widths, strict=False):
            text = value.copy() if isinstance(value, Text) else Text(value)
            text.truncate(column_width, overflow="ellipsis", pad=True)
            parts += [" ", text, " "]
        line = Text.assemble(*parts, end="")
        segments = list(line.render(self.app.console, end=""))
        return Strip(segments).apply_style(style).adjust_cell_length(width, style).simplify()


def _key(cells: Cells) -> tuple[object, ...]:
    """What a row's look depends on. (`Text.__eq__` ignores the base style, so compare it too.)"""
    return tuple((c.plain, str(c.style), tuple(c.spans)) if isinstance(c, Text) else c for c in cells)


def _same(a: Cells, b: Cells) -> bool:
    return _key(a) == _key(b)
