"""What the dashboard's worker threads tell its UI thread: Textual messages, posted, never shared state."""

from __future__ import annotations

from textual.message import Message

from llama_orchestrator.daemon.protocol import DaemonStatus, EventOut, InstanceDetail
from llama_orchestrator.tui.source import DashboardClient


class Connected(Message):
    def __init__(self, client: DashboardClient, status: DaemonStatus) -> None:
        super().__init__()
        self.client = client
        self.status = status


class NoDaemon(Message):
    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class Lost(Message):
    def __init__(self, client: DashboardClient, error: BaseException | None) -> None:
        super().__init__()
        self.client = client
        self.error = error


class StatusArrived(Message):
    def __init__(self, status: DaemonStatus) -> None:
        super().__init__()
        self.status = status


class EventArrived(Message):
    def __init__(self, event: EventOut) -> None:
        super().__init__()
        self.event = event


class LogLines(Message):
    def __init__(self, name: str, lines: list[str]) -> None:
        super().__init__()
        self.name = name
        self.lines = lines


class DetailArrived(Message):
    def __init__(self, name: str, detail: InstanceDetail, history: list[EventOut], model: str = "") -> None:
        super().__init__()
        self.name = name
        self.detail = detail
        self.history = history
        self.model = model  # what the model file says it is (gguf_file.GgufFacts.describe), read off the UI thread


class Notice(Message):
    def __init__(self, text: str, severity: str = "information") -> None:
        super().__init__()
        self.text = text
        self.severity = severity
