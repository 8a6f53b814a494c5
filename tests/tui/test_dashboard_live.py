"""The dashboard against a real daemon running fake llama-servers: each key does what it says.

Everything is awaited with a deadline on something observable (the table's text, the daemon's
answer); nothing sleeps, nothing is timed. The deadlines are generous on purpose (loaded CI
machines): how fast a crash reaches the table is measured in bench/tui (`crash_to_table_ms`).
"""

from __future__ import annotations

import os
import signal

import pytest
from textual.widgets import Static

from llama_orchestrator.daemon.client import DaemonClient
from llama_orchestrator.tui.app import DashboardApp
from llama_orchestrator.tui.fleet_table import FleetTable
from llama_orchestrator.tui.screens import ConfirmScreen, HelpScreen, LogScreen
from tests.support.waiting import async_wait_until
from tests.tui.conftest import screen_text
from tests.tui.realfleet import RealFleet

pytestmark = pytest.mark.integration

SETTLE_S = 20.0  # generous: starting a fake server under a loaded CI machine
CRASH_VISIBLE_S = 10.0  # a deadline, not a timing: the one second is checked by bench/tui


def state_of(app: DashboardApp, name: str) -> str | None:
    return next((row[1] for row in app.table_text() if row[0] == name), None)


def cell(app: DashboardApp, name: str, label: str) -> str | None:
    labels = [c.label for c in app.query_one(FleetTable).shown]
    row = next((row for row in app.table_text() if row[0] == name), None)
    return row[labels.index(label)] if row is not None and label in labels else None


def command_line(app: DashboardApp) -> str:
    return str(app.query_one("#detail-command", Static).content)


def names_in(app: DashboardApp) -> list[str]:
    return [row[0] for row in app.table_text()]


def dashboard(fleet: RealFleet) -> DashboardApp:
    return DashboardApp(lambda: DaemonClient.connect(fleet.paths))


async def select(pilot: object, app: DashboardApp, name: str) -> None:
    table = app.query_one(FleetTable)
    for _ in range(table.row_count):
        if table.selected_name == name:
            break
        await pilot.press("down")  # type: ignore[attr-defined]
    assert table.selected_name == name


async def test_start_restart_and_confirmed_stop_reach_the_daemon(real_fleet: RealFleet) -> None:
    real_fleet.add("alpha")
    real_fleet.add("beta")
    real_fleet.start(up=["alpha"])
    app = dashboard(real_fleet)
    async with app.run_test(size=(120, 40)) as pilot:
        await async_wait_until(lambda: names_in(app) == ["alpha", "beta"], SETTLE_S, message="both rows")
        assert state_of(app, "alpha") == "ready"
        assert state_of(app, "beta") == "stopped"
        await select(pilot, app, "beta")

        await pilot.press("s")
        await async_wait_until(lambda: state_of(app, "beta") == "ready", SETTLE_S, message="beta ready in the table")
        assert real_fleet.status("beta").state == "ready"

        first_pid = real_fleet.status("beta").pid
        await pilot.press("r")
        await async_wait_until(lambda: isinstance(app.screen, ConfirmScreen), 5.0, message="restart asks first")
        await pilot.press("y")
        await async_wait_until(
            lambda: real_fleet.status("beta").pid not in (None, first_pid) and state_of(app, "beta") == "ready",
            SETTLE_S, message="beta restarted (new pid) and ready in the table",
        )

        await pilot.press("x")
        await async_wait_until(lambda: isinstance(app.screen, ConfirmScreen), 5.0, message="stop asks first")
        await pilot.press("n")
        await async_wait_until(lambda: not isinstance(app.screen, ConfirmScreen), 5.0, message="dialog closed")
        assert real_fleet.status("beta").state == "ready"

        await pilot.press("x")
        await async_wait_until(lambda: isinstance(app.screen, ConfirmScreen), 5.0, message="stop asks again")
        await pilot.press("y")
        await async_wait_until(lambda: state_of(app, "beta") == "stopped", SETTLE_S, message="beta stopped")
        assert real_fleet.status("beta").state == "stopped"
        assert state_of(app, "alpha") == "ready"


async def test_a_crash_shows_in_the_table(real_fleet: RealFleet) -> None:
    real_fleet.add("alpha")
    real_fleet.add("beta")
    real_fleet.start()
    app = dashboard(real_fleet)
    async with app.run_test(size=(80, 24)) as pilot:
        await async_wait_until(lambda: state_of(app, "alpha") == "ready", SETTLE_S, message="alpha ready")
        pid = real_fleet.status("alpha").pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        # The daemon restarts a first crash at once, so "starting" may be brief: the restart
        # count is the durable sign. Either must show.
        await async_wait_until(
            lambda: state_of(app, "alpha") != "ready" or cell(app, "alpha", "RST") == "1",
            CRASH_VISIBLE_S, message="the crash visible in the table",
        )
        await async_wait_until(
            lambda: state_of(app, "alpha") == "ready" and cell(app, "alpha", "RST") == "1", SETTLE_S,
            message="alpha back, one restart counted",
        )
        await async_wait_until(lambda: "killed by signal 9" in screen_text(app), 5.0,
                               message="the last exit in the detail pane")
        assert state_of(app, "beta") == "ready"
        await pilot.press("q")


async def test_filter_help_logs_and_mouse(real_fleet: RealFleet) -> None:
    for name in ("alpha", "beta", "gamma"):
        real_fleet.add(name)
    real_fleet.start(up=["alpha", "beta"])
    app = dashboard(real_fleet)
    async with app.run_test(size=(120, 40)) as pilot:
        await async_wait_until(lambda: names_in(app) == ["alpha", "beta", "gamma"], SETTLE_S, message="rows")

        # The detail pane follows the selection: its command line and its log.
        await async_wait_until(lambda: "fake-llama-server.sh --host 127.0.0.1" in command_line(app) or
                               "fake-llama-server.sh -m" in command_line(app), 10.0, message="command line")
        assert "--alias alpha" in command_line(app)
        await async_wait_until(lambda: "server is listening" in screen_text(app) or
                               "model loaded" in screen_text(app), 10.0, message="alpha's log in the pane")

        await pilot.press("slash")
        await pilot.press(*"gam")
        await async_wait_until(lambda: names_in(app) == ["gamma"], 5.0, message="filter narrows the table")
        await pilot.press("escape")
        await async_wait_until(lambda: names_in(app) == ["alpha", "beta", "gamma"], 5.0, message="filter cleared")
        await pilot.press("slash", *"stopped", "enter")
        await async_wait_until(lambda: names_in(app) == ["gamma"], 5.0, message="filter by state")
        await pilot.press("escape")
        await async_wait_until(lambda: len(names_in(app)) == 3, 5.0, message="filter cleared again")

        await pilot.press("question_mark")
        await async_wait_until(lambda: isinstance(app.screen, HelpScreen), 5.0, message="help opens")
        await async_wait_until(lambda: "restart it" in screen_text(app), 5.0, message="help text shown")
        await pilot.press("escape")
        await async_wait_until(lambda: not isinstance(app.screen, HelpScreen), 5.0, message="help closes")

        # Mouse: click beta's row (the header is row 0 of the table).
        assert await pilot.click(FleetTable, offset=(3, 2))
        await async_wait_until(lambda: app.query_one(FleetTable).selected_name == "beta", 5.0, message="click")

        await pilot.press("l")
        await async_wait_until(lambda: isinstance(app.screen, LogScreen), 5.0, message="logs open")
        assert isinstance(app.screen, LogScreen) and app.screen.instance == "beta"
        await async_wait_until(lambda: "listening" in screen_text(app) or "loaded" in screen_text(app), 10.0,
                               message="beta's log full screen")
        await pilot.press("escape")
        await async_wait_until(lambda: not isinstance(app.screen, LogScreen), 5.0, message="logs close")
        await pilot.press("q")
