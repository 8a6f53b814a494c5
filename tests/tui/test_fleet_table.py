"""`FleetTable` on its own: keys and clicks move the cursor, the selection follows the instance (not
the row number) when rows come and go, and a refresh repaints only the rows whose values changed."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import App, ComposeResult

from llama_orchestrator.daemon.protocol import InstanceStatus
from llama_orchestrator.tui.fleet_table import FleetTable
from tests.support.waiting import async_wait_until
from tests.tui.conftest import screen_text
from tests.tui.fakes import make_status

WIDTH, HEIGHT = 120, 12  # 11 table lines: the header and 10 rows


class TableApp(App[None]):
    def __init__(self, rows: list[InstanceStatus]) -> None:
        super().__init__()
        self.rows = rows
        self.highlighted: list[str] = []

    def compose(self) -> ComposeResult:
        yield FleetTable(id="fleet")

    def on_mount(self) -> None:
        self.table.show(self.rows, WIDTH)
        self.table.focus()

    @property
    def table(self) -> FleetTable:
        return self.query_one(FleetTable)

    @on(FleetTable.Highlighted, "#fleet")
    def _highlighted(self, event: FleetTable.Highlighted) -> None:
        self.highlighted.append(event.name)


def fleet_of(n: int, **changes: Any) -> list[InstanceStatus]:
    return [make_status(i, **changes) for i in range(1, n + 1)]


async def test_keys_move_the_cursor_and_scroll_it_into_view() -> None:
    app = TableApp(fleet_of(30))
    async with app.run_test(size=(WIDTH, HEIGHT)) as pilot:
        await async_wait_until(lambda: app.highlighted == ["model-001"], 5.0, message="first row announced")
        await pilot.press("down", "down")
        assert app.table.selected_name == "model-003"
        await pilot.press("up")
        assert app.table.selected_name == "model-002"
        await pilot.press("end")
        assert app.table.selected_name == "model-030"
        await pilot.pause()
        assert "▶model-030" in screen_text(app)  # scrolled into view, marked without colour
        await pilot.press("home", "pagedown")
        assert app.table.cursor_row > 1
        await pilot.press("home", "up")  # stays on the first row
        assert app.table.selected_name == "model-001"
        await async_wait_until(lambda: app.highlighted[-1] == "model-001", 5.0, message="announced")
        assert "model-030" in app.highlighted


async def test_a_click_selects_the_row_under_the_pointer() -> None:
    app = TableApp(fleet_of(5))
    async with app.run_test(size=(WIDTH, HEIGHT)) as pilot:
        assert await pilot.click(FleetTable, offset=(5, 3))  # line 0 is the header
        assert app.table.selected_name == "model-003"
        assert await pilot.click(FleetTable, offset=(5, 0))  # the header selects nothing
        assert app.table.selected_name == "model-003"
        assert await pilot.click(FleetTable, offset=(5, 9))  # below the last row
        assert app.table.selected_name == "model-003"


async def test_the_selection_follows_the_instance_when_rows_change() -> None:
    rows = fleet_of(10)
    app = TableApp(rows)
    async with app.run_test(size=(WIDTH, HEIGHT)) as pilot:
        await pilot.press("down", "down", "down")
        assert app.table.selected_name == "model-004"
        app.table.show([rows[0], rows[3], rows[7]], WIDTH)  # a filter: model-004 is now row 1
        assert app.table.cursor_row == 1 and app.table.selected_name == "model-004"
        app.table.show([rows[0], rows[7]], WIDTH)  # model-004 filtered out: back to the top
        assert app.table.selected_name == "model-001"
        await async_wait_until(lambda: app.highlighted[-1] == "model-001", 5.0, message="the new row announced")
        app.table.show([], WIDTH)
        assert app.table.selected_name is None and app.table.row_count == 0


async def test_a_refresh_redraws_only_the_rows_that_changed() -> None:
    rows = fleet_of(10)
    app = TableApp(rows)
    async with app.run_test(size=(WIDTH, HEIGHT)) as pilot:
        await pilot.pause()
        drawn: list[tuple[object, ...]] = []
        draw = app.table._line

        def counting(cells: Any, width: int, style: Any) -> Any:
            drawn.append(cells)
            return draw(cells, width, style)

        app.table._line = counting  # type: ignore[method-assign]
        app.table.show(rows, WIDTH)  # nothing changed
        await pilot.pause()
        assert drawn == []
        changed = [*rows[:4], rows[4].model_copy(update={"cpu_percent": 55.0}), *rows[5:]]
        app.table.show(changed, WIDTH)
        await pilot.pause()
        assert [cells[0] for cells in drawn] == ["model-005"]
        assert app.table.rows_text()[4][5] == "55"
        drawn.clear()
        app.table.set_state("model-007", "failed")
        await pilot.pause()
        assert [cells[0] for cells in drawn] == ["model-007"]
        assert app.table.rows_text()[6][1] == "failed"
