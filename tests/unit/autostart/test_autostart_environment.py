"""What a service carries over from the installing environment, and how long it waits for a stop.

`LLAMA_ORCH_LLAMA_SERVER` (and `LLAMA_ORCH_EVENT_LOOP`) set where `service install` runs end up
in the unit, plist, task or service command line; nothing else does (no API keys). The stop
timeout is at least 2 x the longest `restart.stop_grace_s` plus a margin, never below 90 s.
"""

from __future__ import annotations

import json
import plistlib
import subprocess
from dataclasses import replace
from pathlib import Path

from autostart_samples import LINUX_HOME, LINUX_HOST, MAC_HOME, MAC_HOST, WINDOWS_HOME, WINDOWS_HOST

from llama_orchestrator.autostart import build_plan, current_host, home_stop_timeout_s
from llama_orchestrator.autostart.launchd import render_plist
from llama_orchestrator.autostart.spec import STOP_TIMEOUT_S, forwarded_environment, stop_timeout_s
from llama_orchestrator.autostart.systemd import render_unit
from llama_orchestrator.autostart.windows_service import service_command_line
from llama_orchestrator.autostart.windows_task import render_task_xml
from llama_orchestrator.config.paths import HomePaths

INSTALLING_ENV = {
    "LLAMA_ORCH_LLAMA_SERVER": "/opt/llama cpp/llama-server",
    "LLAMA_ORCH_EVENT_LOOP": "asyncio",
    "OPENAI_API_KEY": "sk-secret",
    "LLAMA_ORCH_API_KEY": "also-secret",
    "PATH": "/usr/bin",
}
FORWARDED = (("LLAMA_ORCH_LLAMA_SERVER", "/opt/llama cpp/llama-server"), ("LLAMA_ORCH_EVENT_LOOP", "asyncio"))


def test_only_the_forwarded_variables_are_taken_from_the_environment() -> None:
    assert forwarded_environment(INSTALLING_ENV) == FORWARDED
    assert forwarded_environment({"PATH": "/usr/bin", "LLAMA_ORCH_LLAMA_SERVER": ""}) == ()
    assert current_host(INSTALLING_ENV).environment == FORWARDED
    assert current_host({"PATH": "/usr/bin"}).environment == ()


def test_systemd_unit_carries_the_llama_server_path_when_set() -> None:
    unit = render_unit(LINUX_HOME, LINUX_HOST.python, system=False, user="ann", environment=FORWARDED)
    assert 'Environment="LLAMA_ORCH_LLAMA_SERVER=/opt/llama cpp/llama-server"' in unit.splitlines()
    assert "Environment=LLAMA_ORCH_EVENT_LOOP=asyncio" in unit.splitlines()
    assert "secret" not in unit


def test_systemd_unit_has_no_llama_server_line_when_unset() -> None:
    host = replace(LINUX_HOST, environment=current_host({"PATH": "/usr/bin"}).environment)
    plan = build_plan("linux", "logon", False, LINUX_HOME, host.python, host=host)
    assert "LLAMA_ORCH_LLAMA_SERVER" not in plan.files[0].content
    assert "LLAMA_ORCH_EVENT_LOOP" not in plan.files[0].content


def test_launchd_plist_carries_the_forwarded_variables() -> None:
    host = replace(MAC_HOST, environment=forwarded_environment(INSTALLING_ENV))
    plan = build_plan("macos", "logon", False, MAC_HOME, host.python, host=host)
    document = plistlib.loads(plan.files[0].content.encode("utf-8"))
    assert document["EnvironmentVariables"] == {
        "LLAMA_ORCH_HOME": str(MAC_HOME.home),
        "PYTHONUNBUFFERED": "1",
        "LLAMA_ORCH_LLAMA_SERVER": "/opt/llama cpp/llama-server",
        "LLAMA_ORCH_EVENT_LOOP": "asyncio",
    }
    unset = plistlib.loads(render_plist(MAC_HOME, MAC_HOST.python).encode("utf-8"))
    assert "LLAMA_ORCH_LLAMA_SERVER" not in unset["EnvironmentVariables"]


def test_windows_task_passes_the_variables_on_the_daemon_command_line() -> None:
    server = (("LLAMA_ORCH_LLAMA_SERVER", r"C:\llama cpp\llama-server.exe"),)
    xml = render_task_xml(WINDOWS_HOME, WINDOWS_HOST.python, mode="logon", user="ann", environment=server)
    expected = subprocess.list2cmdline(["run", "--env", r"LLAMA_ORCH_LLAMA_SERVER=C:\llama cpp\llama-server.exe"])
    assert expected in xml
    assert "--env" not in render_task_xml(WINDOWS_HOME, WINDOWS_HOST.python, mode="logon", user="ann")


def test_windows_service_passes_the_variables_to_the_service_host() -> None:
    host = replace(WINDOWS_HOST, environment=(("LLAMA_ORCH_LLAMA_SERVER", r"C:\llama cpp\llama-server.exe"),))
    assert service_command_line(WINDOWS_HOME, host).endswith(
        r'--env "LLAMA_ORCH_LLAMA_SERVER=C:\llama cpp\llama-server.exe"'
    )
    assert "--env" not in service_command_line(WINDOWS_HOME, WINDOWS_HOST)


def test_stop_timeout_covers_twice_the_longest_grace() -> None:
    assert stop_timeout_s([]) == STOP_TIMEOUT_S == 90
    assert stop_timeout_s([15.0, 1.0]) == 90  # 2 x 15 + 30 = 60: the floor wins
    assert stop_timeout_s([15.0, 60.0]) == 150
    assert stop_timeout_s([40.25]) == 111


def test_rendered_stop_timeouts_follow_the_plan() -> None:
    unit = build_plan("linux", "logon", False, LINUX_HOME, LINUX_HOST.python, host=LINUX_HOST, stop_timeout_s=150)
    assert "TimeoutStopSec=150" in unit.files[0].content.splitlines()
    plist = build_plan("macos", "logon", False, MAC_HOME, MAC_HOST.python, host=MAC_HOST, stop_timeout_s=150)
    assert plistlib.loads(plist.files[0].content.encode("utf-8"))["ExitTimeOut"] == 150
    default = build_plan("linux", "logon", False, LINUX_HOME, LINUX_HOST.python, host=LINUX_HOST)
    assert "TimeoutStopSec=90" in default.files[0].content.splitlines()


def test_home_stop_timeout_reads_the_instance_configs(tmp_path: Path) -> None:
    paths = HomePaths(tmp_path / "home")
    assert home_stop_timeout_s(paths, {}) == 90  # no configs yet
    for name, grace in (("small", 5.0), ("slow", 75.0)):
        config = paths.instances_dir / name / "config.json"
        config.parent.mkdir(parents=True)
        config.write_text(json.dumps({
            "model": {"path": str(tmp_path / "m.gguf")}, "server": {"port": 18000},
            "restart": {"stop_grace_s": grace},
        }))
    broken = paths.instances_dir / "broken" / "config.json"
    broken.parent.mkdir(parents=True)
    broken.write_text("{ not json")
    assert home_stop_timeout_s(paths, {}) == 2 * 75 + 30
