"""systemd unit rendering: quoting, the keys the reliability scenarios require, systemctl commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from autostart_samples import LINUX_HOME, LINUX_HOST

from llama_orchestrator.autostart.systemd import (
    UNIT_NAME,
    plan_systemd,
    quote_assignment,
    quote_exec_arg,
    render_unit,
)


def _keys(unit: str) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            keys.setdefault(key, []).append(value)
    return keys


@pytest.mark.parametrize(
    ("arg", "quoted"),
    [
        ("plain", "plain"),
        ("/a b/python", '"/a b/python"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("100%", "100%%"),
        ("$HOME", "$$HOME"),
        ("", '""'),
        (";", '";"'),
    ],
)
def test_quote_exec_arg_follows_systemd_quoting(arg: str, quoted: str) -> None:
    assert quote_exec_arg(arg) == quoted


def test_quote_assignment_keeps_dollar_but_doubles_percent() -> None:
    assert quote_assignment("K=/x y/$z%") == '"K=/x y/$z%%"'


def test_user_unit_has_restart_killmode_and_install_target() -> None:
    keys = _keys(render_unit(LINUX_HOME, LINUX_HOST.python, system=False, user="ann"))
    assert keys["Type"] == ["simple"]
    assert keys["Restart"] == ["on-failure"]
    assert int(keys["RestartSec"][0]) >= 1
    assert "RestartSteps" in keys and "RestartMaxDelaySec" in keys
    assert keys["KillMode"] == ["process"]
    assert int(keys["TimeoutStopSec"][0]) > 15
    assert keys["WantedBy"] == ["default.target"]
    assert "User" not in keys
    assert '"LLAMA_ORCH_HOME=/home/ann/.local/share/llama orchestrator"' in keys["Environment"]
    assert keys["ExecStart"][0].startswith('"/home/ann/my venvs/llama orch/bin/python" -m llama_orchestrator')


def test_system_unit_runs_as_the_user_and_is_wanted_by_multi_user() -> None:
    keys = _keys(render_unit(LINUX_HOME, LINUX_HOST.python, system=True, user="ann"))
    assert keys["User"] == ["ann"]
    assert keys["WantedBy"] == ["multi-user.target"]


def test_user_plan_writes_under_xdg_config_and_uses_systemctl_user() -> None:
    plan = plan_systemd(LINUX_HOME, LINUX_HOST.python, LINUX_HOST)
    assert [f.path for f in plan.files] == [Path("/home/ann/.config/systemd/user") / UNIT_NAME]
    assert [c.argv for c in plan.install_commands] == [
        ("systemctl", "--user", "daemon-reload"),
        ("systemctl", "--user", "enable", "--now", UNIT_NAME),
    ]
    assert [c.argv for c in plan.uninstall_commands] == [("systemctl", "--user", "disable", "--now", UNIT_NAME)]
    assert plan.post_uninstall_commands[0].argv == ("systemctl", "--user", "daemon-reload")
    assert any("loginctl enable-linger ann" in note for note in plan.notes)


def test_boot_mode_user_plan_enables_lingering_first() -> None:
    plan = plan_systemd(LINUX_HOME, LINUX_HOST.python, LINUX_HOST, mode="boot")
    assert plan.install_commands[0].argv == ("loginctl", "enable-linger", "ann")


def test_system_plan_writes_to_etc_and_uses_plain_systemctl() -> None:
    plan = plan_systemd(LINUX_HOME, LINUX_HOST.python, LINUX_HOST, system=True)
    assert plan.files[0].path == Path("/etc/systemd/system") / UNIT_NAME
    assert all("--user" not in c.argv for c in plan.install_commands + plan.status_commands)


def test_unit_dir_override_redirects_the_unit(tmp_path: Path) -> None:
    plan = plan_systemd(LINUX_HOME, LINUX_HOST.python, LINUX_HOST, unit_dir=tmp_path)
    assert plan.files[0].path == tmp_path / UNIT_NAME
