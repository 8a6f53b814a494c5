"""Shared by the autostart unit tests: fake hosts and homes (paths with spaces on purpose), fakes, goldens."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath

from llama_orchestrator.autostart import CommandResult, HostFacts
from llama_orchestrator.config.paths import HomePaths

GOLDEN_DIR = Path(__file__).parent / "golden"

LINUX_HOME = HomePaths(Path("/home/ann/.local/share/llama orchestrator"))
LINUX_HOST = HostFacts(
    python=PurePosixPath("/home/ann/my venvs/llama orch/bin/python"),
    user="ann",
    uid=1000,
    user_config_dir=Path("/home/ann/.config"),
    user_home=Path("/home/ann"),
    default_home=LINUX_HOME.home,  # the sample homes are their user's default: the plain names
)

MAC_HOME = HomePaths(Path("/Users/ann/Library/Application Support/llama-orchestrator"))
MAC_HOST = HostFacts(
    python=PurePosixPath("/Users/ann/venv/bin/python"),
    user="ann",
    uid=501,
    user_home=Path("/Users/ann"),
    default_home=MAC_HOME.home,
)

WINDOWS_HOME = HomePaths(Path(r"C:\Users\Ann Lee\AppData\Local\llama-orchestrator"))
WINDOWS_HOST = HostFacts(
    python=PureWindowsPath(r"C:\Users\Ann Lee\llama-orchestrator\.venv\Scripts\python.exe"),
    user=r"DESKTOP-1\Ann Lee",
    base_python=PureWindowsPath(r"C:\Program Files\Python311\python.exe"),
    site_packages=PureWindowsPath(r"C:\Users\Ann Lee\llama-orchestrator\.venv\Lib\site-packages"),
    service_host_script=PureWindowsPath(
        r"C:\Users\Ann Lee\llama-orchestrator\.venv\Lib\site-packages\llama_orchestrator\autostart\_service_host.py"
    ),
    default_home=WINDOWS_HOME.home,
)
WINDOWS_PYTHONW = PureWindowsPath(r"C:\Users\Ann Lee\llama-orchestrator\.venv\Scripts\pythonw.exe")


class ScriptedCommandRunner:
    """Records every argv and answers from `script(argv)` (default: success, no output)."""

    def __init__(self, script: Callable[[tuple[str, ...]], CommandResult] | None = None) -> None:
        self.calls: list[tuple[str, ...]] = []
        self._script = script or (lambda _argv: CommandResult(0))

    def run(self, argv: Sequence[str]) -> CommandResult:
        self.calls.append(tuple(argv))
        return self._script(tuple(argv))


def assert_golden(name: str, text: str) -> None:
    """Compare with golden/<name>; UPDATE_GOLDEN=1 rewrites it (review the diff before committing)."""
    path = GOLDEN_DIR / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8", newline="\n")
    assert path.is_file(), f"missing golden file {path}; run with UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"
