"""The dashboard's pop-up screens: confirm a stop or a restart, the key help, one instance's log full screen."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import Click
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Log, Static

from llama_orchestrator.tui.feeds import Feed
from llama_orchestrator.tui.source import ItemStream

HELP = """\
[b]Keys[/b]
  ↑ ↓ / click   select an instance (its log, events and command
                line show below)
  s             start the selected instance
  x             stop it (asks first)
  r             restart it (asks first)
  l             its log, full screen (Esc to come back)
  /             filter by name, alias, state, backend or model
                (Esc clears)
  d             start the daemon, when none is running
  ?             this help
  q             quit (the daemon and the instances keep running)

[b]Columns[/b]
  RST restarts · CPU% of one core · RSS resident memory
  BUSY requests in flight · TOK/S tokens per second
  States are words as well as colours: ready, starting, unhealthy,
  backoff, stopping, failed, stopped.
"""


class ConfirmScreen(ModalScreen[bool]):
    """Ask a yes/no question; dismisses with True for yes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm", classes="dialog"):
            yield Static(self.question, id="confirm-question")
            with Horizontal(classes="buttons"):
                yield Button("Yes (y)", id="yes", variant="error")
                yield Button("No (n)", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class HelpScreen(ModalScreen[None]):
    """The keys and columns, in a box that scrolls on a short terminal; Esc, ? or q closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark,q", "close", "Close")]

    def compose(self) -> ComposeResult:
        box = VerticalScroll(Static(HELP, id="help-text"), id="help", classes="dialog")
        box.border_subtitle = "Esc closes"
        yield box

    def on_click(self, event: Click) -> None:
        if event.widget is self:  # a click beside the box closes it (not one on its scroll bar)
            self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)


class LogScreen(Screen[None]):
    """One instance's log, following, full screen; the stream is open only while this is shown."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,l", "close", "Back")]

    class Lines(Message):
        def __init__(self, lines: list[str]) -> None:
            super().__init__()
            self.lines = lines

    def __init__(self, name: str, open_stream: Callable[[], ItemStream[str]]) -> None:
        super().__init__()
        self.instance = name
        self._open_stream = open_stream
        self._feed: Feed[str] | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble(("log ", "bold"), self.instance, ("  (following; Esc to go back)", "dim")),
                     id="log-title")
        yield Log(id="log-full", max_lines=10_000, auto_scroll=True)
        yield Footer()

    def on_mount(self) -> None:
        self._feed = Feed(
            f"log-{self.instance}", self._open_stream, lambda line: self.post_message(self.Lines([line]))
        ).start()

    def on_unmount(self) -> None:
        if self._feed is not None:
            self._feed.stop()

    def on_log_screen_lines(self, message: LogScreen.Lines) -> None:
        self.query_one("#log-full", Log).write_lines(message.lines)

    def action_close(self) -> None:
        self.dismiss(None)
