"""launchd plist rendering and launchctl commands."""

from __future__ import annotations

import plistlib
from pathlib import Path

import pytest
from autostart_samples import MAC_HOME, MAC_HOST

from llama_orchestrator.autostart.launchd import plan_launchd, render_plist
from llama_orchestrator.errors import UnsupportedPlatformError


def test_plist_loads_with_plistlib_and_has_the_required_keys() -> None:
    document = plistlib.loads(render_plist(MAC_HOME, MAC_HOST.python).encode("utf-8"))
    assert document["Label"] == "io.github.llama-orchestrator"
    assert document["RunAtLoad"] is True
    assert document["KeepAlive"] == {"SuccessfulExit": False}
    assert document["ProgramArguments"] == [
        "/Users/ann/venv/bin/python", "-m", "llama_orchestrator",
        "--home", "/Users/ann/Library/Application Support/llama-orchestrator", "daemon", "run", "--no-stderr-log",
    ]
    assert document["StandardOutPath"].startswith(str(MAC_HOME.logs_dir))
    assert document["StandardErrorPath"].startswith(str(MAC_HOME.logs_dir))
    assert document["EnvironmentVariables"]["LLAMA_ORCH_HOME"] == str(MAC_HOME.home)


def test_plan_uses_the_gui_domain_of_the_user() -> None:
    plan = plan_launchd(MAC_HOME, MAC_HOST.python, MAC_HOST)
    plist = Path("/Users/ann/Library/LaunchAgents/io.github.llama-orchestrator.plist")
    assert [f.path for f in plan.files] == [plist]
    assert [c.argv for c in plan.install_commands] == [
        ("launchctl", "bootout", "gui/501/io.github.llama-orchestrator"),
        ("launchctl", "enable", "gui/501/io.github.llama-orchestrator"),
        ("launchctl", "bootstrap", "gui/501", str(plist)),
    ]
    assert plan.install_commands[0].check is False
    target = "gui/501/io.github.llama-orchestrator"
    assert [c.argv for c in plan.uninstall_commands] == [("launchctl", "bootout", target)]
    assert [c.argv for c in plan.status_commands] == [("launchctl", "print", target)]


def test_boot_mode_is_refused_on_macos() -> None:
    with pytest.raises(UnsupportedPlatformError):
        plan_launchd(MAC_HOME, MAC_HOST.python, MAC_HOST, mode="boot")
