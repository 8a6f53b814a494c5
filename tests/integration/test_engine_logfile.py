"""Log rotation, tail and follow while a real child appends to its log (engine.logfile)."""

from __future__ import annotations

import asyncio
import itertools
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llama_orchestrator.engine import (
    ChildProcess,
    ExitStatus,
    SpawnSpec,
    exit_status_now,
    follow,
    kill_tree,
    rotate_if_needed,
    spawn,
    tail_lines,
    wait_exit,
)
from llama_orchestrator.engine.logfile import backup_path

pytestmark = pytest.mark.integration

CHILD = Path(__file__).parent / "engine_children" / "child.py"
LINE = re.compile(r"^seq=(\d{8}) x{60}$")


def start_writer(log: Path, count: int) -> ChildProcess:
    return spawn(SpawnSpec("writer", [sys.executable, str(CHILD), "writer", str(count)], {}, log))


def read_all(log: Path, backups: int) -> bytes:
    parts = [backup_path(log, i) for i in range(backups, 0, -1)] + [log]
    return b"".join(p.read_bytes() for p in parts if p.exists())


async def test_rotation_while_child_writes_keeps_order_and_bounds_size(tmp_path: Path) -> None:
    log, stop = tmp_path / "w.log", tmp_path / "stop"
    max_bytes, backups = 64 * 1024, 3
    # the child writes until told to stop, so the rotations below happen while it writes however
    # fast this machine runs it (a fixed count let a fast child finish before the second rotation)
    writer = spawn(SpawnSpec("writer", [sys.executable, str(CHILD), "writer-until", str(stop), "300000"], {}, log))
    rotations, overshoot = 0, 0
    try:
        while exit_status_now(writer) is None:
            if rotate_if_needed(log, max_bytes, backups):
                rotations += 1
                overshoot = max(overshoot, backup_path(log, 1).stat().st_size - max_bytes)
                if rotations == 3:
                    stop.touch()
            await asyncio.sleep(0)
    finally:
        if exit_status_now(writer) is None:
            await kill_tree(writer)
    assert await wait_exit(writer) == ExitStatus(code=0, signal=None)
    assert rotations >= 3, "the child wrote 300,000 lines (~21 MB) without three rotations"

    files = [log] + [backup_path(log, i) for i in range(1, backups + 1)]
    sizes = [f.stat().st_size for f in files if f.exists()]
    assert not backup_path(log, backups + 1).exists()
    # Each file is at most max_bytes plus one burst: what the child wrote between two checks
    # and during the copy (measured per rotation, since it depends on the machine's speed).
    burst = max(overshoot, log.stat().st_size - max_bytes, 0)
    assert sum(sizes) <= max_bytes * (backups + 1) + burst * (backups + 1)

    seqs = [int(m.group(1)) for raw in read_all(log, backups).decode().splitlines() if (m := LINE.match(raw))]
    assert seqs, "no complete lines kept"
    assert all(b > a for a, b in itertools.pairwise(seqs)), "duplicated or reordered lines"
    # Bytes written in the instant between the final read and the truncate may be lost (see
    # rotate_if_needed), so we do not require every line; we require no duplicates and order.


async def test_tail_lines_spans_the_rotated_file(tmp_path: Path) -> None:
    log = tmp_path / "t.log"
    first = start_writer(log, 30)
    assert await wait_exit(first) == ExitStatus(code=0, signal=None)
    assert rotate_if_needed(log, max_bytes=1, backups=2)
    second = start_writer(log, 3)
    assert await wait_exit(second) == ExitStatus(code=0, signal=None)
    lines = tail_lines(log, 5)
    seqs = [int(LINE.match(line).group(1)) for line in lines]  # type: ignore[union-attr]
    assert seqs == [28, 29, 0, 1, 2]


async def next_line(lines: AsyncIterator[str]) -> str:
    return await asyncio.wait_for(lines.__anext__(), timeout=10)


async def test_follow_yields_new_lines_and_survives_rotation(tmp_path: Path) -> None:
    log = tmp_path / "f.log"
    log.write_text("pre 1\npre 2\npre 3\n")
    lines = follow(log, from_end_lines=2, poll_s=0.02)
    try:
        assert [await next_line(lines), await next_line(lines)] == ["pre 2", "pre 3"]
        first = start_writer(log, 20)
        got = [await next_line(lines) for _ in range(20)]
        assert [int(LINE.match(g).group(1)) for g in got] == list(range(20))  # type: ignore[union-attr]
        assert await wait_exit(first) == ExitStatus(code=0, signal=None)

        assert rotate_if_needed(log, max_bytes=1, backups=1)
        second = start_writer(log, 10)  # smaller than before: the shrink is visible
        got = [await next_line(lines) for _ in range(10)]
        assert [int(LINE.match(g).group(1)) for g in got] == list(range(10))  # type: ignore[union-attr]
        assert await wait_exit(second) == ExitStatus(code=0, signal=None)
    finally:
        await lines.aclose()  # type: ignore[attr-defined]
