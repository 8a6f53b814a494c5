"""The CLI writing into pipes as scripts use it: `ps -w | head` gets whole tables as they come
(not a live view that writes only when it stops), and a reader that goes away early ends a
command quietly with exit 0, not as an error."""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from pathlib import Path

import pytest
from tests.support.orch import LLAMA_ORCH, Home
from tests.support.ports import free_port
from tests.support.procs import marked_env

pytestmark = [pytest.mark.integration]


def _lines_within(proc: subprocess.Popen[str], count: int, timeout_s: float) -> list[str]:
    """The first `count` lines `proc` writes to its stdout pipe, or fail once `timeout_s` passes."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while len(lines) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"only {len(lines)} of {count} lines in {timeout_s}s: {lines!r}"
            if selector.select(left):
                line = proc.stdout.readline()
                assert line, f"stdout closed after {lines!r}; stderr: {proc.stderr.read() if proc.stderr else ''}"
                lines.append(line)
    return lines


def test_ps_watch_into_a_pipe_writes_each_refresh_as_whole_lines(home: Home, model: Path) -> None:
    home.write_instance("mt", model=model, port=free_port(), binary=home.fake_binary())
    home.start_daemon()
    home.ok("up", "mt")
    watch = home.popen_cli("ps", "-w")
    try:
        lines = _lines_within(watch, 6, timeout_s=20)  # two refreshes: header, table head, row, blank
    finally:
        watch.terminate()
        watch.wait(10)
    assert "daemon pid" in lines[0] and "daemon pid" in lines[4], lines
    assert [line.split()[:1] for line in lines[1:4]] == [["NAME"], ["mt"], []], lines
    assert lines[5].split()[0] == "NAME", lines
    assert "\x1b" not in "".join(lines), lines  # plain text, no cursor movement


def _into_closed_pipe(home: Home, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `llama-orch ARGS` with stdout a pipe whose reader has already gone (`| head` that ended)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [str(LLAMA_ORCH), "--home", str(home.root), *args], env=marked_env(), stdin=subprocess.DEVNULL,
            stdout=write, stderr=subprocess.PIPE, text=True, timeout=60, check=False,
        )
    finally:
        os.close(write)


@pytest.mark.parametrize("args", [("ps", "--json"), ("ps",), ("logs", "mt"), ("inspect", "mt")])
def test_a_closed_pipe_ends_the_command_quietly_with_0(home: Home, model: Path, args: tuple[str, ...]) -> None:
    home.write_instance("mt", model=model, port=free_port(), binary=home.fake_binary())
    home.paths.instance_log("mt").parent.mkdir(parents=True, exist_ok=True)
    home.paths.instance_log("mt").write_text("".join(f"line {i}\n" for i in range(200)))
    result = _into_closed_pipe(home, *args)
    assert result.returncode == 0, result.stderr
    assert "error" not in result.stderr.lower() and "Traceback" not in result.stderr, result.stderr
