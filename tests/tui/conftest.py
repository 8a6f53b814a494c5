"""Fixtures for the dashboard tests: a real daemon with fake instances, and a screen reader."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from textual.app import App

from tests.tui.realfleet import RealFleet


@pytest.fixture
def real_fleet(tmp_path: Path) -> Iterator[RealFleet]:
    fleet = RealFleet(tmp_path / "home")
    try:
        yield fleet
    finally:
        fleet.close()


def screen_text(app: App[object]) -> str:
    """The current screen as plain text (what a user reads on a monochrome terminal)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True, force_terminal=True,
                      color_system=None, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    text = console.export_text()
    return "\n".join(line.rstrip() for line in text.splitlines())
