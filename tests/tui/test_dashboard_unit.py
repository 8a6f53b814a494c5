"""The dashboard with a hand-written `FakeDaemonClient`: the no-daemon screen, starting the daemon,
streamed transitions, and layout snapshots (golden text) at 80×24 and 160×48.

Regenerate the golden files after a deliberate layout change with UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import Static

from llama_orchestrator.daemon.protocol import ActionResult, EventOut
from llama_orchestrator.errors import ConfigError, ConfigProblem, DaemonNotRunningError
from llama_orchestrator.tui.app import DashboardApp
from llama_orchestrator.tui.fleet_table import FleetTable
from llama_orchestrator.tui.screens import ConfirmScreen, HelpScreen
from tests.support.waiting import async_wait_until
from tests.tui.conftest import screen_text
from tests.tui.fakes import T0, FakeDaemonClient, make_status, no_daemon

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Event times are shown in local time; pin it so the snapshots do not depend on the machine."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def test_no_daemon_says_so_and_offers_to_start_it() -> None:
    fake = FakeDaemonClient()
    started: list[bool] = []

    def factory() -> FakeDaemonClient:
        if not started:
            raise DaemonNotRunningError("no daemon is running for /home/user")
        return fake

    app = DashboardApp(factory, start_daemon=lambda: started.append(True))
    async with app.run_test(size=(80, 24)) as pilot:
        await async_wait_until(lambda: "No daemon is running" in screen_text(app), 5.0, message="no-daemon screen")
        assert "Press d" in screen_text(app)
        assert app.client is None
        await pilot.press("s")  # acting on instances is off while there is no daemon
        assert fake.calls == []
        await pilot.press("d")
        await async_wait_until(lambda: app.client is fake, 5.0, message="connected after starting the daemon")
        assert started == [True]
        await async_wait_until(lambda: [r[0] for r in app.table_text()] == ["model-001", "model-002", "model-003"],
                               5.0, message="the fleet shown")


async def test_no_daemon_without_a_starter_points_to_the_command() -> None:
    app = DashboardApp(no_daemon)
    async with app.run_test(size=(80, 24)):
        await async_wait_until(lambda: "llama-orch daemon start" in screen_text(app), 5.0, message="hint")
        assert "Press d" not in screen_text(app)


async def test_a_streamed_transition_repaints_the_row_and_refreshes_with_one_status_call() -> None:
    fake = FakeDaemonClient()
    app = DashboardApp(lambda: fake, refresh_s=3600.0)  # no ticks: only the event can cause a refresh
    async with app.run_test(size=(160, 30)):
        def status_calls() -> int:
            return sum(1 for name, _ in fake.calls if name == "status")

        # Connecting makes one status() call and the poller's first round another; then it waits.
        await async_wait_until(lambda: len(fake.event_streams) == 1 and status_calls() == 2, 5.0,
                               message="following")
        statuses_before = status_calls()
        fake.set_statuses([make_status(1, "failed", last_error="exited (code 1)"), make_status(2), make_status(3)])
        fake.event_streams[0].push(EventOut(id=9, instance="model-001", from_state="ready", to_state="failed",
                                            reason="gave up", at=T0))
        await async_wait_until(lambda: app.table_text()[0][1] == "failed", 5.0, message="row repainted")
        await async_wait_until(lambda: "exited (code 1)" in " ".join(app.table_text()[0]), 5.0,
                               message="refreshed after the event")
        assert status_calls() - statuses_before == 1
        assert not any(name == "instances" for name, _ in fake.calls)
        assert "ready 2/3  failed 1" in screen_text(app)


async def test_the_log_follows_only_the_selected_instance() -> None:
    fake = FakeDaemonClient()
    app = DashboardApp(lambda: fake)
    async with app.run_test(size=(120, 30)) as pilot:
        await async_wait_until(lambda: len(fake.log_streams) == 1, 5.0, message="first instance followed")
        await pilot.press("down")
        await async_wait_until(lambda: len(fake.log_streams) == 2, 5.0, message="second instance followed")
        (first, stream1), (second, stream2) = fake.log_streams
        assert (first, second) == ("model-001", "model-002")
        assert stream1.closed.is_set() and not stream2.closed.is_set()
    assert stream2.closed.is_set()
    assert all(s.closed.is_set() for s in fake.event_streams)


class RefusingDaemonClient(FakeDaemonClient):
    def act(self, action: str, names: list[str], wait_s: float | None = None) -> ActionResult:
        raise ConfigError([ConfigProblem("/m/[q4]/a:x:b.gguf", "model.path", "starts with b'root:x:0'")])


async def test_an_error_notice_shows_its_text_as_it_is() -> None:
    fake = RefusingDaemonClient()
    app = DashboardApp(lambda: fake)
    async with app.run_test(size=(160, 30), notifications=True) as pilot:
        await async_wait_until(lambda: len(app.table_text()) == 3, 5.0, message="the fleet shown")
        await pilot.press("s")
        # the error's text in the toast as it is: "[q4]" is not taken for markup
        await async_wait_until(lambda: "/m/[q4]/a:x:b.gguf" in screen_text(app), 5.0, message="shown verbatim")


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
async def test_layout_snapshot(size: tuple[int, int]) -> None:
    statuses = [make_status(i) for i in range(1, 6)]
    statuses[2] = make_status(3, "failed", last_error="exited (code 1): failed to load model")
    statuses[4] = make_status(5, "stopped", pid=None, uptime_s=None, cpu_percent=None, rss_bytes=None)
    fake = FakeDaemonClient(statuses)
    app = DashboardApp(lambda: fake, refresh_s=3600.0)
    async with app.run_test(size=size) as pilot:
        seen: list[str] = []

        async def settled() -> str | None:
            # the log pane scrolls to its end a refresh after the lines arrive: under load a single
            # look can catch it half-way, so wait for two identical looks with the pane filled
            await pilot.pause()
            text = screen_text(app)
            stable = seen[-1:] == [text]
            seen.append(text)
            return text if stable and "line 5 of the log" in text and "starting → ready" in text else None

        text = await async_wait_until(settled, 5.0, message="the screen settled, detail pane filled")
        # the fake's data is fixed: nothing to mask
    golden = GOLDEN / f"dashboard-{size[0]}x{size[1]}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text + "\n", encoding="utf-8")
    assert text + "\n" == golden.read_text(encoding="utf-8")


async def test_the_summary_says_what_the_selected_model_file_holds(tiny_model: Path) -> None:
    fake = FakeDaemonClient([make_status(1, model=str(tiny_model)), make_status(2)])
    app = DashboardApp(lambda: fake)

    def summary() -> str:
        return str(app.query_one("#detail-summary", Static).content)

    async with app.run_test(size=(160, 40)) as pilot:
        await async_wait_until(lambda: "llama · F32 · trained for 8192 tokens" in summary(), 5.0,
                               message="the model file's description in the summary")
        await pilot.press("down")  # /models/m002.gguf does not exist: nothing is made up
        await async_wait_until(lambda: "model-002" in summary(), 5.0, message="the second instance's summary")
        assert "trained for" not in summary()


async def test_a_changed_config_is_marked_in_the_row_and_said_in_the_summary() -> None:
    fake = FakeDaemonClient([make_status(1, changed="-c 512 → -c 1024"), make_status(2)])
    app = DashboardApp(lambda: fake)
    async with app.run_test(size=(160, 40)):
        await async_wait_until(lambda: "config changed" in str(app.query_one("#detail-summary", Static).content),
                               5.0, message="the summary says the config changed")
        summary = str(app.query_one("#detail-summary", Static).content)
        assert "config changed: -c 512 → -c 1024 (`up` applies it)" in summary
        states = {row[0]: row[1] for row in app.table_text()}
        assert states == {"model-001": "ready*", "model-002": "ready"}, app.table_text()


async def test_restart_asks_first_and_only_yes_restarts() -> None:
    fake = FakeDaemonClient()
    app = DashboardApp(lambda: fake, refresh_s=3600.0)
    async with app.run_test(size=(120, 30)) as pilot:
        await async_wait_until(lambda: app.query_one(FleetTable).selected_name == "model-001", 5.0, message="selected")
        await pilot.press("r")
        await async_wait_until(lambda: "Restart model-001? Requests it is" in screen_text(app), 5.0,
                               message="restart asks first")
        await pilot.press("n")
        await async_wait_until(lambda: not isinstance(app.screen, ConfirmScreen), 5.0, message="dialog closed")
        await pilot.press("r")
        await async_wait_until(lambda: isinstance(app.screen, ConfirmScreen), 5.0, message="asks again")
        await pilot.press("y")
        await async_wait_until(lambda: ("act", ("restart", ("model-001",))) in fake.calls, 5.0, message="restarted")
        assert [c for c in fake.calls if c[0] == "act"] == [("act", ("restart", ("model-001",)))]


async def test_help_fits_a_small_terminal_one_line_per_key() -> None:
    app = DashboardApp(lambda: FakeDaemonClient(), refresh_s=3600.0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await async_wait_until(lambda: isinstance(app.screen, HelpScreen), 5.0, message="help opens")
        await async_wait_until(lambda: "Esc closes" in screen_text(app), 5.0, message="help drawn")
        text = screen_text(app)
        # each key's line whole (the box was 22 cells wide and wrapped every line)
        for line in ("s             start the selected instance", "r             restart it (asks first)",
                     "d             start the daemon, when none is running"):
            assert line in text, text
        # taller than the screen: the box scrolls to the rest
        help_box = app.screen.query_one("#help")
        assert help_box.max_scroll_y > 0
        help_box.scroll_end(animate=False)
        await async_wait_until(lambda: "backoff, stopping, failed, stopped." in screen_text(app), 5.0,
                               message="scrolled to the end")


async def test_a_narrow_pane_shows_the_newest_events() -> None:
    fake = FakeDaemonClient()
    app = DashboardApp(lambda: fake, refresh_s=3600.0)
    async with app.run_test(size=(80, 30)):
        await async_wait_until(lambda: len(fake.event_streams) == 1, 5.0, message="following")
        for i in range(2, 8):
            fake.event_streams[0].push(EventOut(id=i, instance="model-001", from_state="ready", to_state="ready",
                                                reason=f"probe note {i}", at=T0))
        # the narrow pane has room for three events: the newest show, the older are a scroll away
        await async_wait_until(lambda: "probe note 7" in screen_text(app), 5.0, message="newest shown")
        text = screen_text(app)
        assert "probe note 5" in text and "probe note 2" not in text, text
