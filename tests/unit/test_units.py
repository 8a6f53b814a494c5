"""`llama_orchestrator.units`: the durations, sizes and times both the CLI and the dashboard show."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from llama_orchestrator import units


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "-"), (0, "0s"), (59.9, "59s"), (60, "1m00s"), (125, "2m05s"), (3599, "59m59s"),
    (3600, "1h00m"), (3725, "1h02m"), (86399, "23h59m"), (86400, "1d00h"), (3 * 86400 + 4 * 3600, "3d04h"),
])
def test_duration(seconds: float | None, text: str) -> None:
    assert units.duration(seconds) == text


@pytest.mark.parametrize(("num", "text"), [
    (None, "-"), (0, "0B"), (1023, "1023B"), (1024, "1KiB"), (12 * 1024, "12KiB"),
    (201 * 1024 * 1024, "201.0MiB"), (1024**3, "1.0GiB"), (int(7.5 * 1024**3), "7.5GiB"), (2048 * 1024**3, "2048.0GiB"),
])
def test_size(num: int | None, text: str) -> None:
    assert units.size(num) == text


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_times_are_local(utc: None) -> None:
    assert units.timestamp(1_700_000_000.0) == "2023-11-14 22:13:20"
    assert units.clock(1_700_000_000.0) == "22:13:20"
