"""The daemon's own log files: where the log goes, how big the files get, who may read them.

A detached daemon (`daemon start`) logs only to `logs/daemon.log`, rotated; its stderr file
`logs/daemon.out` keeps only what logging cannot catch and is rotated at launch when too big.
A foreground `daemon run` (a terminal, systemd) still logs to stderr as well. Every log file the
project writes is 0600 on POSIX, rotated copies included.
"""

from __future__ import annotations

import logging
import logging.handlers
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.orch import LLAMA_ORCH, Home, wait_gone
from tests.support.ports import free_port
from tests.support.procs import marked_env
from tests.support.waiting import wait_until

from llama_orchestrator.config.paths import HomePaths
from llama_orchestrator.daemon.entry import configure_logging
from llama_orchestrator.engine import rotate_if_needed
from llama_orchestrator.engine.logfile import backup_path
from llama_orchestrator.errors import OrchestratorError

pytestmark = pytest.mark.integration

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _daemon_out(home: Home) -> Path:
    return home.paths.logs_dir / "daemon.out"


def _log_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(errors="replace").splitlines() if line.strip()]


def test_detached_daemon_does_not_copy_its_log_to_daemon_out(home: Home, model: Path) -> None:
    home.write_instance("chatty", model=model, port=free_port(), binary=home.fake_binary())
    home.start_daemon()
    home.ok("start", "chatty")
    home.wait_state("chatty", "ready")
    home.ok("stop", "chatty")
    home.wait_state("chatty", "stopped")
    home.close()
    logged = _log_lines(home.paths.daemon_log)
    assert any("chatty" in line for line in logged), logged  # the daemon did log
    out = _daemon_out(home).read_text(errors="replace")
    copied = [line for line in logged if line in out]
    assert copied == [], f"daemon.out repeats daemon.log: {copied[:3]}"
    assert len(out) < 4096, out[:500]


def test_daemon_out_over_the_bound_is_rotated_before_a_launch(home: Home) -> None:
    out = _daemon_out(home)
    old = b"old crash output\n" * (2 * 1024 * 1024 // 17)  # over the 1 MiB bound
    out.write_bytes(old)
    home.start_daemon()
    assert backup_path(out, 1).read_bytes() == old
    assert out.stat().st_size < 4096


def test_daemon_out_under_the_bound_is_appended_to(home: Home) -> None:
    out = _daemon_out(home)
    out.write_bytes(b"earlier output\n")
    home.start_daemon()
    assert out.read_bytes().startswith(b"earlier output\n")
    assert not backup_path(out, 1).exists()


def test_foreground_daemon_run_still_logs_to_stderr_and_takes_env(home: Home) -> None:
    stderr_file = home.scratch / "stderr.txt"
    with open(stderr_file, "wb") as stderr:
        proc = subprocess.Popen(
            # --env: how a Windows scheduled task hands the daemon LLAMA_ORCH_* variables
            [str(LLAMA_ORCH), "--home", str(home.root), "daemon", "run", "--no-autostart",
             "--env", "LLAMA_ORCH_EVENT_LOOP=asyncio"],
            env=marked_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
        )
    home.daemon_pids.add(proc.pid)
    try:
        wait_until(lambda: _answers(home), 30.0, 0.05, "the foreground daemon answers")
        home.ok("daemon", "stop")
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    wait_gone(proc.pid, 10)
    logged = _log_lines(home.paths.daemon_log)
    assert logged
    assert logged[0] in stderr_file.read_text(errors="replace")
    assert any("asyncio event loop" in line for line in logged), logged


def _answers(home: Home) -> bool:
    try:
        home.client()
    except OrchestratorError:
        return False
    return True


@posix_only
def test_detached_daemon_log_files_are_owner_only(home: Home) -> None:
    home.start_daemon()
    assert _mode(home.paths.daemon_log) == 0o600
    assert _mode(_daemon_out(home)) == 0o600


@posix_only
def test_daemon_log_and_its_rotations_are_owner_only(tmp_path: Path) -> None:
    paths = HomePaths(tmp_path / "home")
    paths.ensure()
    paths.daemon_log.write_text("left 0644 by an older version\n")
    paths.daemon_log.chmod(0o644)
    handlers = configure_logging(paths, to_stderr=False)
    try:
        file_handler = handlers[0]
        assert isinstance(file_handler, logging.handlers.RotatingFileHandler)
        for _ in range(2):
            logging.getLogger("test_daemon_logs").warning("a line before the rollover")
            file_handler.doRollover()  # what the handler does at maxBytes
        logging.getLogger("test_daemon_logs").warning("a line after two rollovers")
    finally:
        for handler in handlers:
            logging.getLogger().removeHandler(handler)
            handler.close()
    files = [paths.daemon_log, backup_path(paths.daemon_log, 1), backup_path(paths.daemon_log, 2)]
    assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}


@posix_only
def test_rotated_instance_logs_are_owner_only(tmp_path: Path) -> None:
    log = tmp_path / "inst.log"
    log.touch(mode=0o600)
    log.chmod(0o600)
    for _ in range(3):
        log.write_bytes(b"y" * 5000)
        assert rotate_if_needed(log, 4096, 2)
    files = [log, backup_path(log, 1), backup_path(log, 2)]
    assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
