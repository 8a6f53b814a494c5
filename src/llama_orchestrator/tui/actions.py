"""What the dashboard does to the selected instance (start; stop and restart after a confirmation;
follow its log), as the base of `DashboardApp`: each command goes to the daemon on a worker
thread, and its answer comes back as a notice.
"""

from __future__ import annotations

from textual import on, work
from textual.app import App

from llama_orchestrator.daemon.protocol import DaemonStatus
from llama_orchestrator.tui.feeds import STREAM_ERRORS, Poller
from llama_orchestrator.tui.fleet_table import FleetTable
from llama_orchestrator.tui.messages import Notice
from llama_orchestrator.tui.screens import ConfirmScreen, LogScreen
from llama_orchestrator.tui.source import DashboardClient

TAIL_LINES = 200


class InstanceActions(App[None]):
    client: DashboardClient | None
    _poller: Poller[DaemonStatus] | None

    def _target(self) -> str | None:
        name = self.query_one(FleetTable).selected_name
        if name is None:
            self.notify("no instance selected", severity="warning")
        return name

    def action_start(self) -> None:
        if name := self._target():
            self._act("start", name)

    def action_restart(self) -> None:
        self._confirmed("restart", "Restart {}? Requests it is serving are cut.")

    def action_stop(self) -> None:
        self._confirmed("stop", "Stop {}?")

    def _confirmed(self, action: str, question: str) -> None:
        """`action` on the selected instance once the user says yes (both cut what it is serving)."""
        name = self._target()
        if name is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._act(action, name)

        self.push_screen(ConfirmScreen(question.format(name)), answered)

    @work(thread=True, group="act")
    def _act(self, action: str, name: str) -> None:
        client = self.client
        if client is None:
            return
        try:
            client.act(action, [name])
        except STREAM_ERRORS as exc:
            self.post_message(Notice(f"{action} {name}: {exc}", "error"))
            return
        self.post_message(Notice(f"{action}: {name}"))
        if self._poller is not None:
            self._poller.poke()

    @on(Notice)
    def _notice(self, message: Notice) -> None:
        # not markup: error text such as "[q4]" in a path shows as it is
        self.notify(message.text, severity=message.severity, markup=False)  # type: ignore[arg-type]

    def action_logs(self) -> None:
        client, name = self.client, self._target()
        if client is None or name is None:
            return
        self.push_screen(LogScreen(name, lambda: client.logs(name, TAIL_LINES * 5, follow=True)))
