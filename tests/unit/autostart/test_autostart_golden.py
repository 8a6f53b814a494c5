"""Every rendered file and the Windows service commands, compared with reviewed golden files."""

from __future__ import annotations

from autostart_samples import (
    LINUX_HOME,
    LINUX_HOST,
    MAC_HOME,
    MAC_HOST,
    WINDOWS_HOME,
    WINDOWS_HOST,
    WINDOWS_PYTHONW,
    assert_golden,
)

from llama_orchestrator.autostart.launchd import render_plist
from llama_orchestrator.autostart.spec import ServicePlan
from llama_orchestrator.autostart.systemd import render_unit
from llama_orchestrator.autostart.windows_service import plan_windows_service
from llama_orchestrator.autostart.windows_task import render_task_xml


def _commands_text(plan: ServicePlan) -> str:
    lines: list[str] = []
    for label in ("install_commands", "uninstall_commands", "post_uninstall_commands", "status_commands"):
        lines.append(f"# {label}")
        for command in getattr(plan, label):
            lines.append(("" if command.check else "[check=False] ") + repr(list(command.argv)))
    return "\n".join(lines) + "\n"


def test_golden_systemd_user_unit() -> None:
    assert_golden(
        "llama-orchestrator.user.service",
        render_unit(LINUX_HOME, LINUX_HOST.python, system=False, user=LINUX_HOST.user),
    )


def test_golden_systemd_system_unit() -> None:
    assert_golden(
        "llama-orchestrator.system.service",
        render_unit(LINUX_HOME, LINUX_HOST.python, system=True, user=LINUX_HOST.user),
    )


def test_golden_launchd_plist() -> None:
    assert_golden("io.github.llama-orchestrator.plist", render_plist(MAC_HOME, MAC_HOST.python))


def test_golden_windows_logon_task() -> None:
    assert_golden(
        "task-logon.xml", render_task_xml(WINDOWS_HOME, WINDOWS_PYTHONW, mode="logon", user=WINDOWS_HOST.user)
    )


def test_golden_windows_boot_task() -> None:
    assert_golden(
        "task-boot.xml", render_task_xml(WINDOWS_HOME, WINDOWS_PYTHONW, mode="boot", user=WINDOWS_HOST.user)
    )


def test_golden_windows_service_commands() -> None:
    assert_golden("windows-service-commands.txt", _commands_text(plan_windows_service(WINDOWS_HOME, WINDOWS_HOST)))
