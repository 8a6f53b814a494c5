"""Each home's autostart entry has a name of its own: the default home keeps the plain names
(existing installs go on working), any other home's carry a stable hash of its path, so two homes
never overwrite each other's unit, agent, task or service; and status reads which home an
installed entry runs, from its file or from the service manager's answer."""

from __future__ import annotations

import plistlib
import subprocess
from dataclasses import replace
from pathlib import Path, PureWindowsPath

import pytest
from autostart_samples import (
    LINUX_HOME,
    LINUX_HOST,
    MAC_HOME,
    MAC_HOST,
    WINDOWS_HOME,
    WINDOWS_HOST,
    WINDOWS_PYTHONW,
    ScriptedCommandRunner,
)

from llama_orchestrator.autostart import (
    CommandResult,
    ServicePlan,
    _service_host,
    build_plan,
    current_host,
    read_status,
    windows_service,
)
from llama_orchestrator.autostart.launchd import plan_launchd
from llama_orchestrator.autostart.systemd import plan_systemd
from llama_orchestrator.autostart.windows_service import plan_windows_service, service_command_line
from llama_orchestrator.autostart.windows_task import plan_windows_task
from llama_orchestrator.config.paths import ENV_HOME, HomePaths, resolve_home

OTHER_LINUX = HomePaths(Path("/srv/orch two"))
OTHER_MAC = HomePaths(Path("/Users/ann/orch b"))
OTHER_WINDOWS = HomePaths(Path(r"C:\Orch\Two"))


def test_the_default_home_keeps_the_plain_names_on_every_backend() -> None:
    assert plan_systemd(LINUX_HOME, LINUX_HOST.python, LINUX_HOST).name == "llama-orchestrator.service"
    assert plan_systemd(LINUX_HOME, LINUX_HOST.python, LINUX_HOST, system=True).name == "llama-orchestrator.service"
    assert plan_launchd(MAC_HOME, MAC_HOST.python, MAC_HOST).name == "io.github.llama-orchestrator"
    assert plan_windows_task(WINDOWS_HOME, WINDOWS_PYTHONW, WINDOWS_HOST, mode="logon").name == "llama-orchestrator"
    assert plan_windows_service(WINDOWS_HOME, WINDOWS_HOST).name == "llama-orchestrator"
    assert "--service-name" not in service_command_line(WINDOWS_HOME, WINDOWS_HOST)


def test_another_systemd_home_has_a_unit_of_its_own() -> None:
    plan = plan_systemd(OTHER_LINUX, LINUX_HOST.python, LINUX_HOST)
    unit = "llama-orchestrator-3de284e8.service"  # stable: an upgrade must find what an older version installed
    assert plan.name == unit
    assert [f.path for f in plan.files] == [Path("/home/ann/.config/systemd/user") / unit]
    assert [c.argv for c in (*plan.install_commands, *plan.uninstall_commands, *plan.status_commands)] == [
        ("systemctl", "--user", "daemon-reload"),
        ("systemctl", "--user", "enable", "--now", unit),
        ("systemctl", "--user", "disable", "--now", unit),
        ("systemctl", "--user", "is-enabled", unit),
        ("systemctl", "--user", "is-active", unit),
    ]
    assert plan.post_uninstall_commands[1].argv == ("systemctl", "--user", "reset-failed", unit)
    assert '--home "/srv/orch two"' in plan.files[0].content
    system = plan_systemd(OTHER_LINUX, LINUX_HOST.python, LINUX_HOST, system=True)
    assert system.files[0].path == Path("/etc/systemd/system") / unit


def test_another_launchd_home_has_an_agent_of_its_own() -> None:
    plan = plan_launchd(OTHER_MAC, MAC_HOST.python, MAC_HOST)
    label = "io.github.llama-orchestrator-f5820100"
    plist = Path(f"/Users/ann/Library/LaunchAgents/{label}.plist")
    assert plan.name == label
    assert [f.path for f in plan.files] == [plist]
    assert plistlib.loads(plan.files[0].content.encode("utf-8"))["Label"] == label
    assert [c.argv for c in (*plan.install_commands, *plan.uninstall_commands, *plan.status_commands)] == [
        ("launchctl", "bootout", f"gui/501/{label}"),
        ("launchctl", "enable", f"gui/501/{label}"),
        ("launchctl", "bootstrap", "gui/501", str(plist)),
        ("launchctl", "bootout", f"gui/501/{label}"),
        ("launchctl", "print", f"gui/501/{label}"),
    ]


def test_another_windows_home_has_a_task_of_its_own() -> None:
    plan = plan_windows_task(OTHER_WINDOWS, WINDOWS_PYTHONW, WINDOWS_HOST, mode="logon")
    name = "llama-orchestrator-6448166f"
    assert plan.name == name
    assert f"<URI>\\{name}</URI>" in plan.files[0].content
    assert [c.argv[1:4] for c in plan.install_commands] == [("/Create", "/TN", name), ("/Run", "/TN", name)]
    assert [c.argv[-3:] for c in plan.uninstall_commands][1:] == [("/End", "/TN", name), ("/TN", name, "/F")]
    assert plan.status_commands[0].argv[:4] == ("schtasks", "/Query", "/TN", name)


def test_another_windows_home_has_a_service_of_its_own_with_its_own_display_name() -> None:
    plan = plan_windows_service(OTHER_WINDOWS, WINDOWS_HOST)
    name = "llama-orchestrator-6448166f"
    create, description, failure, failureflag, start = (c.argv for c in plan.install_commands)
    assert create[:3] == ("sc.exe", "create", name)
    assert create[-2:] == ("DisplayName=", name)  # display names are unique on a machine too
    assert description == ("sc.exe", "description", name, f"{windows_service.DESCRIPTION} Home: {OTHER_WINDOWS.home}")
    assert (failure[2], failureflag[2], start[2]) == (name, name, name)
    assert [c.argv[:3] for c in (*plan.uninstall_commands, *plan.status_commands)] == [
        ("sc.exe", "stop", name), ("sc.exe", "delete", name), ("sc.exe", "query", name), ("sc.exe", "qc", name)]
    # the service host registers under the name the SCM knows it by
    assert subprocess.list2cmdline(["--service-name", name]) in service_command_line(OTHER_WINDOWS, WINDOWS_HOST)


def test_windows_names_ignore_the_case_of_the_path() -> None:
    lower = HomePaths(Path(r"c:\orch\two"))
    assert plan_windows_service(lower, WINDOWS_HOST).name == plan_windows_service(OTHER_WINDOWS, WINDOWS_HOST).name
    shouting = HomePaths(Path(str(WINDOWS_HOME.home).upper()))
    assert plan_windows_service(shouting, WINDOWS_HOST).name == "llama-orchestrator"


def test_two_homes_never_share_a_name_and_an_unknown_default_names_every_home() -> None:
    names = {plan_systemd(HomePaths(Path(f"/srv/orch{i}")), LINUX_HOST.python, LINUX_HOST).name for i in range(50)}
    assert len(names) == 50
    unknown = replace(LINUX_HOST, default_home=None)
    assert plan_systemd(LINUX_HOME, LINUX_HOST.python, unknown).name.startswith("llama-orchestrator-")


def test_the_plan_of_another_home_says_how_to_find_its_entry() -> None:
    other = build_plan("linux", "logon", False, OTHER_LINUX, LINUX_HOST.python, host=LINUX_HOST)
    assert any("carries a hash of this home (/srv/orch two)" in note
               and '`llama-orch --home "/srv/orch two" service status`' in note for note in other.notes)
    default = build_plan("linux", "logon", False, LINUX_HOME, LINUX_HOST.python, host=LINUX_HOST)
    assert not any("hash" in note for note in default.notes)


def test_the_host_default_home_is_the_one_resolve_home_picks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_HOME, raising=False)
    assert current_host({}).default_home == resolve_home(None).home


def test_the_service_host_registers_the_service_name_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    hosted: list[tuple[Path, str]] = []
    monkeypatch.setattr(windows_service, "host_service", lambda home, name: hosted.append((home, name)))
    _service_host.main(["--home", r"C:\Orch\Two", "--service-name", "llama-orchestrator-6448166f"])
    _service_host.main(["--home", r"C:\Users\Ann Lee\AppData\Local\llama-orchestrator"])
    assert hosted == [(Path(r"C:\Orch\Two"), "llama-orchestrator-6448166f"),
                      (Path(r"C:\Users\Ann Lee\AppData\Local\llama-orchestrator"), "llama-orchestrator")]


# ---- which home an installed entry runs --------------------------------------------------------

def _installed(plan: ServicePlan, tmp_path: Path) -> ServicePlan:
    """`plan` with its file written under tmp_path, as an install leaves it."""
    file = replace(plan.files[0], path=tmp_path / plan.files[0].path.name)
    file.path.write_text(file.content, encoding="utf-8")
    return replace(plan, files=(file,))


@pytest.mark.parametrize("home", [LINUX_HOME, HomePaths(Path("/srv/100% $HOME \"quoted\""))], ids=["spaces", "escapes"])
def test_status_reads_the_home_of_a_systemd_unit(tmp_path: Path, home: HomePaths) -> None:
    plan = _installed(plan_systemd(home, LINUX_HOST.python, LINUX_HOST), tmp_path)
    status = read_status(plan, ScriptedCommandRunner(lambda _argv: CommandResult(0, "enabled\n")))
    assert (status.installed, status.home, status.runs(home.home), status.runs(OTHER_LINUX.home)) == (
        True, str(home.home), True, False)
    assert status.to_json()["home"] == str(home.home)


def test_status_reads_the_home_of_a_launch_agent(tmp_path: Path) -> None:
    plan = _installed(plan_launchd(OTHER_MAC, MAC_HOST.python, MAC_HOST), tmp_path)
    status = read_status(plan, ScriptedCommandRunner(lambda _argv: CommandResult(0, "state = running\n")))
    assert (status.installed, status.home) == (True, str(OTHER_MAC.home))


def test_status_reads_the_home_from_the_windows_command_lines() -> None:
    task = plan_windows_task(WINDOWS_HOME, WINDOWS_PYTHONW, WINDOWS_HOST, mode="logon")
    command = subprocess.list2cmdline([str(WINDOWS_PYTHONW), "-m", "llama_orchestrator", "--home",
                                       str(WINDOWS_HOME.home), "daemon", "run"])
    query = f"TaskName: \\llama-orchestrator\nStatus: Running\nTask To Run: {command}\n"
    status = read_status(task, ScriptedCommandRunner(lambda _argv: CommandResult(0, query)))
    assert status.home == str(WINDOWS_HOME.home)
    assert status.runs(PureWindowsPath(str(WINDOWS_HOME.home).lower())) is True

    service = plan_windows_service(OTHER_WINDOWS, WINDOWS_HOST)
    qc = f"        START_TYPE         : 2   AUTO_START\n        BINARY_PATH_NAME   : " \
         f"{service_command_line(OTHER_WINDOWS, WINDOWS_HOST)}\n"
    answers = {"query": "        STATE              : 4  RUNNING\n", "qc": qc}
    status = read_status(service, ScriptedCommandRunner(lambda argv: CommandResult(0, answers[argv[1]])))
    assert (status.home, status.runs(WINDOWS_HOME.home)) == (str(OTHER_WINDOWS.home), False)

    gone = read_status(service, ScriptedCommandRunner(lambda _argv: CommandResult(1060, "does not exist")))
    assert (gone.installed, gone.home, gone.runs(OTHER_WINDOWS.home)) == (False, None, None)
