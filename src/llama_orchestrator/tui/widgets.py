"""The dashboard's header bar and detail pane (the fleet table is `fleet_table.FleetTable`).

They only render what the app hands them; none of them talks to the daemon.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Button, Log, Static

from llama_orchestrator import units
from llama_orchestrator.config.argv import quote_command
from llama_orchestrator.core.states import STATE_STYLE
from llama_orchestrator.daemon.protocol import DaemonStatus, EventOut, InstanceDetail, InstanceStatus
from llama_orchestrator.tui import fleet


class HeaderBar(Static):
    """Daemon and gateway status and addresses, host CPU and memory, how many instances are ready."""

    def show_status(self, status: DaemonStatus, width: int) -> None:
        self.update(header_text(status, width))

    def show_message(self, message: str, style: str = "bold yellow") -> None:
        self.update(Text.assemble(("llama-orch ", "bold"), (message, style)))


class NoDaemonPanel(Vertical):
    """Shown instead of the fleet while no daemon answers: why, and how to start one."""

    def compose(self) -> ComposeResult:
        yield Static(id="nodaemon-text")
        yield Button("Start the daemon (d)", id="start-daemon", variant="primary")

    def show_reason(self, reason: str, can_start: bool) -> None:
        offer = ("Press d (or click the button) to start it; instances start only when you ask." if can_start
                 else "Start it with `llama-orch daemon start`.")
        self.query_one("#nodaemon-text", Static).update(Text.assemble(
            ("No daemon is running.\n\n", "bold"), reason, "\n\n", offer,
            ("\n\nThis screen reconnects by itself once a daemon answers.", "dim")))
        self.query_one("#start-daemon").display = can_start

    def show_starting(self) -> None:
        self.query_one("#nodaemon-text", Static).update(Text("Starting the daemon…", style="bold"))


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
        f"  gpu {status.gpu_memory}" if status.gpu_memory else "",
        (f"  store: {status.store}", "yellow") if not status.store_ok else "",
    )
    if first.cell_len + 2 + second.cell_len <= width - 2:
        return Text.assemble(first, "  ", second)
    return Text.assemble(first, "\n", second)


class TailLog(Log):
    """A following log that keeps its last line in view when its height changes (the summary,
    command line and events above it grow as they fill, after the first lines were written)."""

    def on_resize(self) -> None:
        if self.auto_scroll:
            self.scroll_end(animate=False)


class DetailPane(Vertical):
    """The selected instance: a summary line, the effective command line, recent events, its log."""

    def compose(self) -> ComposeResult:
        with Vertical(id="detail-side"):
            yield Static(id="detail-summary")
            yield Static(id="detail-command")
            with VerticalScroll(id="detail-events"):  # a narrow pane shows the newest; scroll up for the rest
                yield Static(id="detail-events-text")
        yield TailLog(id="detail-log", max_lines=1000, auto_scroll=True)

    def show_nothing(self, message: str) -> None:
        self.query_one("#detail-summary", Static).update(Text(message, style="dim"))
        self.query_one("#detail-command", Static).update("")
        self.query_one("#detail-events-text", Static).update("")
        self.query_one("#detail-log", Log).clear()

    def show_summary(self, s: InstanceStatus, model: str = "") -> None:
        parts: list[str | tuple[str, str]] = [(s.name, "bold"), " ", (s.state, STATE_STYLE.get(s.state, ""))]
        if s.reason:
            parts.append(f" ({s.reason})")
        if s.last_exit:  # before the long parts, so a narrow pane does not crop it
            parts.append(f"  last exit: {s.last_exit}")
        if s.changed:
            parts.append((f"  config changed: {s.changed} (`up` applies it)", "yellow"))
        parts.append(f"  pid {s.pid or '-'}  http://{s.host}:{s.port}  {s.backend}  {s.model}")
        if model:
            parts.append((f"  {model}", "dim"))
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
                (e.to_state, STATE_STYLE.get(e.to_state, "")), f"  {e.reason}",
            )
            for e in events
        ]
        text = Text("\n").join(lines) if lines else Text("no events yet", style="dim")
        self.query_one("#detail-events-text", Static).update(text)
        events_box = self.query_one("#detail-events", VerticalScroll)
        self.call_after_refresh(events_box.scroll_end, animate=False)
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
