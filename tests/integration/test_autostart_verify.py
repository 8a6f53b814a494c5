"""`systemd-analyze verify` on the rendered units (runs the real tool when it is installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llama_orchestrator.autostart.systemd import UNIT_NAME, render_unit
from llama_orchestrator.config.paths import HomePaths

pytestmark = pytest.mark.integration


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("system", [False, True], ids=["user", "system"])
def test_rendered_unit_passes_systemd_analyze_verify(tmp_path: Path, system: bool) -> None:
    # verify checks that ExecStart's program exists, so render with the real interpreter and
    # a real home whose path has a space in it.
    home = tmp_path / "home dir"
    home.mkdir()
    unit = tmp_path / UNIT_NAME
    unit.write_text(render_unit(HomePaths(home), Path(sys.executable), system=system, user="root"))
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    argv = ["systemd-analyze", "verify", *([] if system else ["--user"]), str(unit)]
    completed = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
    )
    # systemd < 254 warns about RestartSteps=/RestartMaxDelaySec= and ignores them: not an error.
    problems = [
        line for line in completed.stderr.splitlines()
        if line.strip() and "RestartSteps" not in line and "RestartMaxDelaySec" not in line
    ]
    assert completed.returncode == 0, completed.stderr
    assert problems == [], completed.stderr
