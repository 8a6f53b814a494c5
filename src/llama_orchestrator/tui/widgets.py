"""The dashboard's widgets: the header bar, the fleet table and the detail pane.

They only render what the app hands them; none of them talks to the daemon. The fleet table
updates cell by cell (only cells whose text changed), so a refresh of a hundred idle rows costs
little more than comparing strings.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Log, Static

from llama_orchestrator import units
from llama_orchestrator.config.argv import quote_command
from llama_orchestrator.daemon.protocol import DaemonStatus, EventOut, InstanceDetail, InstanceStatus
from llama_orchestrator.tui import fleet


class HeaderBar(Static):
    """Daemon and gateway status and addresses, host CPU and memory, how many instances are ready."""

    def show_status(self, status: DaemonStatus, width: int) -> None:
        self.update(header_text(status, width))

    def show_message(self, message: str, style: str = "bold yellow") -> None:
        self.update(Text.assemble(("llama-orch ", "bold"), (message, style)))


def header_text(status: DaemonStatus, width: int) -> Text:
    """One line when it fits `width`, else two: the daemon and the fleet, then the gateway and the host."""
    gateway = status.gateway
    if gateway.address:
        gw: tuple[str, str] = (f"on {gateway.address}", "green")
    elif gateway.error:
        gw = (f"down ({gateway.error})", "red")
    else:
        gw = ("off", "dim")
    ready = sum(1 for s in status.instances if s.state == "ready")
    failed = sum(1 for s in status.instances if s.state == "failed")
    first = Text.assemble(
        ("llama-orch ", "bold"),
        f"daemon pid {status.pid} on {status.control_address} up {units.duration(status.uptime_s)}",
        f"  ready {ready}/{len(status.instances)}",
        (f"  failed {failed}", "bold red") if failed else "",
    )
    second = Text.assemble(
        "gateway ", gw,
        f"  host cpu {fleet.percent(status.host_cpu_percent)}% mem {fleet.percent(status.host_memory_percent)}%",
        (f"  store: {status.store}", "yellow") if not status.store_ok else "",
    )
    if first.cell_len + 2 + second.cell_len <= width - 2:
        return Text.assemble(first, "  ", second)
    return Text.assemble(first, "\n", second)


class FleetTable(DataTable[str | Text]):
    """One row per instance (key = instance name); the columns follow the terminal's width."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)  # type: ignore[arg-type]
        self.shown: tuple[fleet.Column, ...] = ()
        self._cells: dict[str, tuple[str | Text, ...]] = {}
        self._order: list[str] = []
        self._keep_selection: str | None = None

    @property
    def selected_name(self) -> str | None:
        if not self._order or not 0 <= self.cursor_row < len(self._order):
            return None
        return self._order[self.cursor_row]

    def show(self, rows: Iterable[InstanceStatus], width: int) -> None:
        """Make the table show `rows` (in order) with the columns that fit `width`."""
        rows = list(rows)
        columns = fleet.columns_for(width)
        if columns != self.shown:
            self._set_columns(columns, width)
        names = [s.name for s in rows]
        if names != self._order:
            self._rebuild(rows)
            return
        for s in rows:
            new = fleet.row(self.shown, s)
            old = self._cells[s.name]
            if new == old:
                continue
            for column, before, after in zip(self.shown, old, new, strict=True):
                if before != after:
                    self.update_cell(s.name, column.key, after)
            self._cells[s.name] = new

    def _set_columns(self, columns: tuple[fleet.Column, ...], width: int) -> None:
        selected = self.selected_name
        self.clear(columns=True)
        self._cells, self._order = {}, []
        spare = max(0, width - sum(c.width + fleet.CELL_GAP for c in columns) - 2)
        for column in columns:
            extra = spare if column.key == "error" else 0
            self.add_column(column.label, width=column.width + extra, key=column.key)
        self.shown = columns
        self._keep_selection = selected

    def _rebuild(self, rows: list[InstanceStatus]) -> None:
        selected = self._keep_selection or self.selected_name
        self._keep_selection = None
        self.clear()
        self._cells = {}
        for s in rows:
            cells = fleet.row(self.shown, s)
            self.add_row(*cells, key=s.name)
            self._cells[s.name] = cells
        self._order = [s.name for s in rows]
        if selected in self._cells:
            self.move_cursor(row=self._order.index(selected), animate=False)

    def set_state(self, name: str, state: str) -> None:
        """Show a streamed transition at once, before the next full refresh fills in the rest."""
        if name not in self._cells or "state" not in {c.key for c in self.shown}:
            return
        index = [c.key for c in self.shown].index("state")
        cells = list(self._cells[name])
        cells[index] = fleet.state_text(state)
        self._cells[name] = tuple(cells)
        self.update_cell(name, "state", cells[index])


class DetailPane(Vertical):
    """The selected instance: a summary line, the effective command line, recent events, its log."""

    def compose(self) -> ComposeResult:
        with Vertical(id="detail-side"):
            yield Static(id="detail-summary")
            yield Static(id="detail-command")
            yield Static(id="detail-events")
        yield Log(id="detail-log", max_lines=1000, auto_scroll=True)

    def show_nothing(self, message: str) -> None:
        self.query_one("#detail-summary", Static).update(Text(message, style="dim"))
        self.query_one("#detail-command", Static).update("")
        self.query_one("#detail-events", Static).update("")
        self.query_one("#detail-log", Log).clear()

    def show_summary(self, s: InstanceStatus) -> None:
        parts: list[str | tuple[str, str]] = [(s.name, "bold"), " ", (s.state, fleet.STATE_STYLE.get(s.state, ""))]
        if s.reason:
            parts.append(f" ({s.reason})")
        if s.last_exit:  # before the long parts, so a narrow pane does not crop it
            parts.append(f"  last exit: {s.last_exit}")
        parts.append(f"  pid {s.pid or '-'}  http://{s.host}:{s.port}  {s.backend}  {s.model}")
        self.query_one("#detail-summary", Static).update(Text.assemble(*parts))

    def show_detail(self, detail: InstanceDetail) -> None:
        self.show_summary(detail.status)
        command = Text.assemble(("$ ", "dim"), quote_command(detail.argv))
        self.query_one("#detail-command", Static).update(command)
        self._keep_log_at_end()

    def show_events(self, events: Iterable[EventOut]) -> None:
        lines = [
            Text.assemble(
                (units.clock(e.at), "dim"), " ", e.from_state or "-", " → ",
                (e.to_state, fleet.STATE_STYLE.get(e.to_state, "")), f"  {e.reason}",
            )
            for e in events
        ]
        text = Text("\n").join(lines) if lines else Text("no events yet", style="dim")
        self.query_one("#detail-events", Static).update(text)
        self._keep_log_at_end()

    def on_resize(self) -> None:
        self._keep_log_at_end()

    def _keep_log_at_end(self) -> None:
        """The summary, command and events change height as they fill: keep the log's last line in view."""
        log = self.query_one("#detail-log", Log)
        self.call_after_refresh(log.scroll_end, animate=False)

    def clear_log(self) -> None:
        self.query_one("#detail-log", Log).clear()

    def add_log_lines(self, lines: list[str]) -> None:
        self.query_one("#detail-log", Log).write_lines(lines)
