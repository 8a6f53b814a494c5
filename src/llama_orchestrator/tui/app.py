"""`DashboardApp`: the live fleet view (`llama-orch dashboard` / `llama-orch top`).

How it stays live without waste:
  * one stream of events (`client.events(follow=True)`) read on a daemon thread; a transition
    repaints that row's state at once and asks for a refresh;
  * one `status()` request about once a second (and right after a transition) brings the header,
    every row's figures and uptime: one request per round, not one per instance;
  * the log tail follows the selected instance only, through one streamed request that is shut
    when the selection changes (after a short pause, so scrolling through the list opens nothing).
When no daemon answers it says so, retries quietly every few seconds, and offers to start one.
"""

from __future__ import annotations

from collections import deque
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.events import Resize
from textual.timer import Timer
from textual.widgets import Button, Footer, Input

from llama_orchestrator import gguf_file
from llama_orchestrator.daemon.protocol import DaemonStatus, EventOut, InstanceStatus
from llama_orchestrator.tui import fleet
from llama_orchestrator.tui.actions import TAIL_LINES, InstanceActions
from llama_orchestrator.tui.feeds import STREAM_ERRORS, Feed, Poller
from llama_orchestrator.tui.fleet_table import FleetTable
from llama_orchestrator.tui.messages import (
    Connected,
    DetailArrived,
    EventArrived,
    LogLines,
    Lost,
    NoDaemon,
    StatusArrived,
)
from llama_orchestrator.tui.screens import HelpScreen
from llama_orchestrator.tui.source import ClientFactory, DaemonStarter, DashboardClient
from llama_orchestrator.tui.widgets import DetailPane, HeaderBar, NoDaemonPanel

REFRESH_S = 1.0  # resource figures and uptime
RECONNECT_S = 2.0  # while no daemon answers
SELECT_SETTLE_S = 0.15  # the cursor rests this long before the detail pane follows it
EVENTS_SHOWN = 6
WIDE_COLUMNS = 120  # from this width the detail pane puts the log beside the events


_DETAIL_PARTS = "#detail-summary, #detail-command, #detail-events, #detail-log"  # what the handlers update
_DETAIL_PART_COUNT = 4

class DashboardApp(InstanceActions):
    CSS_PATH = "dashboard.tcss"
    TITLE = "llama-orch"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "start", "Start"),
        Binding("x", "stop", "Stop"),
        Binding("r", "restart", "Restart"),
        Binding("l", "logs", "Logs"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("d", "start_daemon", "Start daemon"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(
        self,
        client_factory: ClientFactory,
        *,
        start_daemon: DaemonStarter | None = None,
        refresh_s: float = REFRESH_S,
    ) -> None:
        super().__init__()
        self._factory = client_factory
        self._starter = start_daemon
        self._refresh_s = refresh_s
        self.client: DashboardClient | None = None
        self.daemon_status: DaemonStatus | None = None
        self.statuses: dict[str, InstanceStatus] = {}
        self.filter_text = ""
        self.selected: str | None = None
        self._events: dict[str, deque[EventOut]] = {}
        self._event_feed: Feed[EventOut] | None = None
        self._tail_feed: Feed[str] | None = None
        self._poller: Poller[DaemonStatus] | None = None
        self._reconnect: Timer | None = None
        self._settle: Timer | None = None
        self._summary_key: tuple[object, ...] | None = None
        self._starting_daemon = False
        self._models: dict[str, str] = {}  # model path -> what the file says it is

    # ---- layout --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        yield NoDaemonPanel(id="nodaemon")
        with Vertical(id="main"):
            yield FleetTable(id="fleet")
            yield Input(placeholder="filter: name, alias, state, backend or model (Esc clears)", id="filter")
            yield DetailPane(id="detail")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(HeaderBar).show_message("connecting to the daemon…", "dim")
        self.query_one("#main").display = False
        self.query_one("#nodaemon").display = False
        self.query_one("#filter").display = False
        self.set_class(self.size.width < WIDE_COLUMNS, "-narrow")
        self._connect()

    def on_unmount(self) -> None:
        self._drop_client()

    @on(Resize)
    def _resized(self, event: Resize) -> None:
        self.set_class(event.size.width < WIDE_COLUMNS, "-narrow")
        if self.daemon_status is not None:
            self.query_one(HeaderBar).show_status(self.daemon_status, event.size.width)
        self._show_rows()

    # ---- connecting ----------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="connect")
    def _connect(self) -> None:
        try:
            client = self._factory()
            status = client.status()
        except STREAM_ERRORS as exc:
            self.post_message(NoDaemon(str(exc)))
            return
        self.post_message(Connected(client, status))

    @on(Connected)
    def _connected(self, message: Connected) -> None:
        if self.client is not None:
            return
        self.client = client = message.client
        self._starting_daemon = False
        if self._reconnect is not None:
            self._reconnect.stop()
            self._reconnect = None
        self.query_one("#nodaemon").display = False
        self.query_one("#main").display = True
        self._apply_status(message.status)
        self._event_feed = Feed(
            "events",
            lambda: client.events(after_id=-1, follow=True),
            lambda event: self.post_message(EventArrived(event)),
            ended=lambda error: self.post_message(Lost(client, error)),
        ).start()
        self._poller = Poller(
            "status",
            client.status,
            lambda status: self.post_message(StatusArrived(status)),
            lambda error: self.post_message(Lost(client, error)),
            self._refresh_s,
        ).start()
        self.query_one(FleetTable).focus()
        self.refresh_bindings()

    @on(NoDaemon)
    def _no_daemon(self, message: NoDaemon) -> None:
        if self.client is not None:
            return
        self._show_no_daemon(message.reason)

    @on(Lost)
    def _lost(self, message: Lost) -> None:
        if message.client is not self.client:
            return
        self._drop_client()
        why = f": {message.error}" if message.error else ""
        self._show_no_daemon(f"lost the daemon{why}")

    def _show_no_daemon(self, reason: str) -> None:
        if self._starting_daemon:
            return
        self.query_one(HeaderBar).show_message("no daemon is running")
        self.query_one("#main").display = False
        panel = self.query_one(NoDaemonPanel)
        panel.display = True
        panel.show_reason(reason, can_start=self._starter is not None)
        if self._reconnect is None:
            self._reconnect = self.set_interval(RECONNECT_S, self._connect)
        self.refresh_bindings()

    def _widgets_gone(self) -> bool:
        """True once the app's widgets are going: a feed's last messages may still arrive while it
        exits, and Textual removes a pane's children before the pane (a detail that came then
        found the pane without its summary)."""
        return len(self.query(_DETAIL_PARTS)) < _DETAIL_PART_COUNT or not self.query(DetailPane)

    def _drop_client(self) -> None:
        for stoppable in (self._event_feed, self._tail_feed, self._poller):
            if stoppable is not None:
                stoppable.stop()
        self._event_feed = self._tail_feed = None
        self._poller = None
        self.client = None

    def action_start_daemon(self) -> None:
        if self.client is not None or self._starter is None or self._starting_daemon:
            return
        self._starting_daemon = True
        self.query_one(NoDaemonPanel).show_starting()
        self._start_daemon(self._starter)

    @on(Button.Pressed, "#start-daemon")
    def _start_pressed(self) -> None:
        self.action_start_daemon()

    @work(thread=True, exclusive=True, group="connect")
    def _start_daemon(self, starter: DaemonStarter) -> None:
        try:
            starter()
        except STREAM_ERRORS as exc:
            self._starting_daemon = False
            self.post_message(NoDaemon(f"could not start the daemon: {exc}"))
            return
        self._connect()

    # ---- live data -----------------------------------------------------------------------
    @on(StatusArrived)
    def _status_arrived(self, message: StatusArrived) -> None:
        if self.client is not None and not self._widgets_gone():
            self._apply_status(message.status)

    def _apply_status(self, status: DaemonStatus) -> None:
        self.daemon_status = status
        self.statuses = {s.name: s for s in status.instances}
        self.query_one(HeaderBar).show_status(status, self.size.width)
        self._show_rows()
        if self.selected in self.statuses:
            self._show_summary(self.statuses[self.selected])

    def _show_rows(self) -> None:
        if self.daemon_status is None:
            return
        rows = [s for s in self.daemon_status.instances if fleet.matches(s, self.filter_text)]
        table = self.query_one(FleetTable)
        table.show(rows, self.size.width)
        if not rows:
            self.selected = None
            self.query_one(DetailPane).show_nothing(
                "no instance matches the filter" if self.filter_text else "no instances configured"
            )

    @on(EventArrived)
    def _event_arrived(self, message: EventArrived) -> None:
        if self._widgets_gone():
            return
        event = message.event
        self._events.setdefault(event.instance, deque(maxlen=EVENTS_SHOWN)).append(event)
        self.query_one(FleetTable).set_state(event.instance, event.to_state)
        if event.instance == self.selected:
            self.query_one(DetailPane).show_events(self._events[event.instance])
        if self._poller is not None:
            self._poller.poke()

    # ---- the selected instance -----------------------------------------------------------
    @on(FleetTable.Highlighted, "#fleet")
    def _row_highlighted(self, event: FleetTable.Highlighted) -> None:
        name = event.name
        if name == self.selected:
            return
        self.selected = name
        if self._tail_feed is not None:
            self._tail_feed.stop()
            self._tail_feed = None
        if self._settle is not None:
            self._settle.stop()
        self._settle = self.set_timer(SELECT_SETTLE_S, self._follow_selected)

    def _follow_selected(self) -> None:
        if self._widgets_gone():
            return
        client, name = self.client, self.selected
        pane = self.query_one(DetailPane)
        pane.clear_log()
        self._summary_key = None
        if client is None or name is None:
            return
        if name in self.statuses:
            self._show_summary(self.statuses[name])
        pane.show_events(self._events.get(name, ()))
        self._load_detail(client, name)
        self._tail_feed = Feed(
            f"tail-{name}",
            lambda: client.logs(name, TAIL_LINES, follow=True),
            lambda line: self.post_message(LogLines(name, [line])),
        ).start()

    @work(thread=True, exclusive=True, group="detail")
    def _load_detail(self, client: DashboardClient, name: str) -> None:
        try:
            detail = client.inspect(name)
            stream = client.events(name, tail=EVENTS_SHOWN)  # the newest few, oldest first
            try:
                history = list(stream)
            finally:
                stream.close()
        except STREAM_ERRORS:
            return  # the instance went away, or the daemon did: the next refresh says which
        self.post_message(DetailArrived(name, detail, history, gguf_file.facts(detail.status.model).describe()))

    @on(DetailArrived)
    def _detail_arrived(self, message: DetailArrived) -> None:
        if message.name != self.selected or self._widgets_gone():
            return
        known = {e.id: e for e in message.history}
        known.update({e.id: e for e in self._events.get(message.name, ())})
        events = deque(sorted(known.values(), key=lambda e: e.id), maxlen=EVENTS_SHOWN)
        self._events[message.name] = events
        self._models[message.detail.status.model] = message.model
        pane = self.query_one(DetailPane)
        pane.show_detail(message.detail)
        pane.show_events(events)
        self._summary_key = None
        if message.name in self.statuses:
            self._show_summary(self.statuses[message.name])

    @on(LogLines)
    def _log_lines(self, message: LogLines) -> None:
        if message.name == self.selected and self._tail_feed is not None and not self._widgets_gone():
            self.query_one(DetailPane).add_log_lines(message.lines)

    def _show_summary(self, s: InstanceStatus) -> None:
        model = self._models.get(s.model, "")
        key = (s.name, s.state, s.reason, s.pid, s.port, s.last_exit, s.changed, s.model, s.backend, model)
        if key != self._summary_key:
            self._summary_key = key
            self.query_one(DetailPane).show_summary(s, model)

    # ---- actions -------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("start", "stop", "restart", "logs", "filter"):
            return self.client is not None
        if action == "start_daemon":
            return self.client is None and self._starter is not None
        return True

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if box.display:
            box.value = ""
            box.display = False
            self.query_one(FleetTable).focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self._show_rows()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            event.input.display = False
        self.query_one(FleetTable).focus()

    # ---- for tests and the benchmark -----------------------------------------------------
    def visible_rows(self) -> list[InstanceStatus]:
        return [s for s in self.statuses.values() if fleet.matches(s, self.filter_text)]

    def table_text(self) -> list[list[str]]:
        """The fleet table as plain text, row by row (what a user reads, colour aside)."""
        return self.query_one(FleetTable).rows_text()
