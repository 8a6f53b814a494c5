"""Log rotation and tail on plain files (engine.logfile); no processes."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest

from llama_orchestrator.engine import logfile
from llama_orchestrator.engine.logfile import backup_path, rotate_if_needed, tail_lines


def write_lines(path: Path, start: int, count: int) -> None:
    with open(path, "a") as f:
        for i in range(start, start + count):
            f.write(f"line {i}\n")


def test_tail_lines_reads_the_end(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    write_lines(log, 0, 10_000)
    assert tail_lines(log, 3) == ["line 9997", "line 9998", "line 9999"]
    assert tail_lines(log, 0) == []


def test_tail_lines_keeps_a_partial_last_line(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("a\nb\npartial")
    assert tail_lines(log, 2) == ["b", "partial"]


def test_tail_lines_continues_into_the_rotated_file(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    write_lines(backup_path(log, 1), 0, 5)
    write_lines(log, 5, 2)
    assert tail_lines(log, 4) == ["line 3", "line 4", "line 5", "line 6"]


def test_tail_lines_of_missing_file_is_empty(tmp_path: Path) -> None:
    assert tail_lines(tmp_path / "none.log", 5) == []


def test_rotate_below_limit_does_nothing(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    write_lines(log, 0, 3)
    assert not rotate_if_needed(log, max_bytes=1000, backups=2)
    assert not backup_path(log, 1).exists()


def test_rotate_shifts_backups_and_drops_the_oldest(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    for generation in range(4):
        log.write_text(f"gen {generation}\n")
        assert rotate_if_needed(log, max_bytes=1, backups=2)
        assert log.read_bytes() == b""
    assert backup_path(log, 1).read_text() == "gen 3\n"
    assert backup_path(log, 2).read_text() == "gen 2\n"
    assert not backup_path(log, 3).exists()


def test_rotate_keeps_an_o_append_writer_writing_to_the_live_file(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.write(fd, b"before\n" * 100)
        assert rotate_if_needed(log, max_bytes=10, backups=1)
        os.write(fd, b"after\n")
    finally:
        os.close(fd)
    assert log.read_bytes() == b"after\n"  # no hole of NULs: O_APPEND wrote at the new end
    assert backup_path(log, 1).read_bytes() == b"before\n" * 100


def test_rotate_on_full_disk_returns_false_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "x.log"
    write_lines(log, 0, 100)
    original = log.read_bytes()

    def copy_onto_full_disk(src: Path, dst: Path) -> None:
        dst.write_bytes(src.read_bytes()[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(logfile, "_copy_all_then_truncate", copy_onto_full_disk)
    monkeypatch.setattr(logfile, "_disk_full", logfile._RateLimitedWarning(60.0, clock=lambda: 0.0))
    caplog.set_level(logging.WARNING, logger="llama_orchestrator.engine.logfile")
    for _ in range(5):
        assert not rotate_if_needed(log, max_bytes=10, backups=1)
    assert log.read_bytes() == original  # nothing lost, nothing truncated
    assert len([r for r in caplog.records if "disk full" in r.getMessage()]) == 1


def test_rate_limited_warning_speaks_again_after_the_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limiter = logfile._RateLimitedWarning(60.0, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="llama_orchestrator.engine.logfile")
    for t in (0.0, 1.0, 59.0, 61.0):
        now[0] = t
        limiter.warn("disk full")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["disk full", "disk full (2 more suppressed)"]
