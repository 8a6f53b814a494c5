"""Windows task XML and service: structure, encoding, commands, and the SCM handshake via fakes."""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading
import types
import xml.etree.ElementTree as ET
from pathlib import Path, PureWindowsPath

import pytest
from autostart_samples import WINDOWS_HOME, WINDOWS_HOST, WINDOWS_PYTHONW

from llama_orchestrator.autostart import build_plan
from llama_orchestrator.autostart.executor import write_file
from llama_orchestrator.autostart.windows_service import (
    DAEMON_ENTRY_POINT,
    ServiceLifecycle,
    load_daemon_entry,
    plan_windows_service,
    service_command_line,
)
from llama_orchestrator.autostart.windows_task import (
    TASK_NAMESPACE,
    plan_windows_task,
    render_task_xml,
    windowless_interpreter,
)
from llama_orchestrator.config.paths import HomePaths
from llama_orchestrator.errors import AutostartError

NS = {"t": TASK_NAMESPACE}


def _task(mode: str) -> ET.Element:
    text = render_task_xml(WINDOWS_HOME, WINDOWS_PYTHONW, mode=mode, user=WINDOWS_HOST.user)  # type: ignore[arg-type]
    return ET.fromstring(text.encode("utf-16"))


@pytest.mark.parametrize("mode", ["logon", "boot"])
def test_task_xml_is_well_formed_with_the_required_elements(mode: str) -> None:
    root = _task(mode)
    assert root.tag == f"{{{TASK_NAMESPACE}}}Task"
    assert float(root.attrib["version"]) >= 1.2
    for path in ("t:RegistrationInfo", "t:Triggers", "t:Principals/t:Principal", "t:Settings", "t:Actions/t:Exec"):
        assert root.find(path, NS) is not None, path
    assert root.find("t:Actions", NS).attrib["Context"] == root.find("t:Principals/t:Principal", NS).attrib["id"]  # type: ignore[union-attr]
    settings = root.find("t:Settings", NS)
    assert settings is not None
    assert settings.findtext("t:ExecutionTimeLimit", namespaces=NS) == "PT0S"
    assert settings.findtext("t:Hidden", namespaces=NS) == "true"
    assert settings.findtext("t:MultipleInstancesPolicy", namespaces=NS) == "IgnoreNew"
    assert settings.findtext("t:DisallowStartIfOnBatteries", namespaces=NS) == "false"
    assert settings.findtext("t:StopIfGoingOnBatteries", namespaces=NS) == "false"
    assert settings.findtext("t:RestartOnFailure/t:Interval", namespaces=NS) == "PT1M"
    assert settings.findtext("t:RestartOnFailure/t:Count", namespaces=NS) == "999"
    assert int(settings.findtext("t:Priority", namespaces=NS) or "7") <= 6


def test_logon_task_uses_a_logon_trigger_and_the_interactive_token() -> None:
    root = _task("logon")
    assert root.findtext("t:Triggers/t:LogonTrigger/t:UserId", namespaces=NS) == r"DESKTOP-1\Ann Lee"
    assert root.find("t:Triggers/t:BootTrigger", NS) is None
    assert root.findtext("t:Principals/t:Principal/t:LogonType", namespaces=NS) == "InteractiveToken"


def test_boot_task_uses_a_boot_trigger_and_local_system() -> None:
    root = _task("boot")
    assert root.find("t:Triggers/t:BootTrigger", NS) is not None
    assert root.find("t:Triggers/t:LogonTrigger", NS) is None
    assert root.findtext("t:Principals/t:Principal/t:UserId", namespaces=NS) == "S-1-5-18"


def test_task_exec_runs_pythonw_with_a_quoted_home() -> None:
    root = _task("logon")
    command = root.findtext("t:Actions/t:Exec/t:Command", namespaces=NS)
    arguments = root.findtext("t:Actions/t:Exec/t:Arguments", namespaces=NS)
    assert command == f'"{WINDOWS_PYTHONW}"'
    assert arguments == subprocess.list2cmdline(
        ["-m", "llama_orchestrator", "--home", str(WINDOWS_HOME.home), "daemon", "run"]
    )


def test_task_xml_escapes_markup_in_names(tmp_path: Path) -> None:
    text = render_task_xml(HomePaths(Path("C:/a&b <c>")), WINDOWS_PYTHONW, mode="logon", user="D\\x&y")
    root = ET.fromstring(text.encode("utf-16"))
    assert root.findtext("t:Actions/t:Exec/t:WorkingDirectory", namespaces=NS) == "C:/a&b <c>"


def test_task_file_is_written_utf16_with_a_bom(tmp_path: Path) -> None:
    plan = plan_windows_task(HomePaths(tmp_path), WINDOWS_PYTHONW, WINDOWS_HOST, mode="logon")
    (file,) = plan.files
    write_file(file)
    data = file.path.read_bytes()
    assert data[:2] in (b"\xff\xfe", b"\xfe\xff")
    assert ET.fromstring(data).tag == f"{{{TASK_NAMESPACE}}}Task"


def test_task_plan_commands() -> None:
    plan = plan_windows_task(WINDOWS_HOME, WINDOWS_PYTHONW, WINDOWS_HOST, mode="logon")
    xml = str(plan.files[0].path)
    assert [c.argv for c in plan.install_commands] == [
        ("schtasks", "/Create", "/TN", "llama-orchestrator", "/XML", xml, "/F"),
        ("schtasks", "/Run", "/TN", "llama-orchestrator"),
    ]
    assert [c.argv[-3:] for c in plan.uninstall_commands] == [
        (str(WINDOWS_HOME.home), "daemon", "stop"),
        ("/End", "/TN", "llama-orchestrator"),
        ("/TN", "llama-orchestrator", "/F"),
    ]
    assert [c.argv for c in plan.status_commands] == [
        ("schtasks", "/Query", "/TN", "llama-orchestrator", "/V", "/FO", "LIST")
    ]


def test_windowless_interpreter_prefers_pythonw_when_it_exists() -> None:
    python = PureWindowsPath(r"C:\v env\Scripts\python.exe")
    assert windowless_interpreter(python, lambda _p: True) == PureWindowsPath(r"C:\v env\Scripts\pythonw.exe")
    assert windowless_interpreter(python, lambda _p: False) == python


def test_build_plan_for_windows_picks_pythonw() -> None:
    plan = build_plan("windows", "logon", False, WINDOWS_HOME, WINDOWS_HOST.python, host=WINDOWS_HOST,
                      exists=lambda _p: True)
    assert "pythonw.exe" in plan.files[0].content


def test_service_binpath_uses_the_base_interpreter_and_the_host_script() -> None:
    argv_line = service_command_line(WINDOWS_HOME, WINDOWS_HOST)
    assert argv_line.startswith(r'"C:\Program Files\Python311\python.exe" "C:\Users\Ann Lee')
    assert r'--home "C:\Users\Ann Lee\AppData\Local\llama-orchestrator"' in argv_line
    assert "--site-packages" in argv_line


def test_service_plan_sets_delayed_auto_start_and_recovery_actions() -> None:
    plan = plan_windows_service(WINDOWS_HOME, WINDOWS_HOST)
    create, description, failure, failureflag, start = (c.argv for c in plan.install_commands)
    assert create[:4] == ("sc.exe", "create", "llama-orchestrator", "binPath=")
    assert create[5:7] == ("start=", "delayed-auto")
    assert failure == ("sc.exe", "failure", "llama-orchestrator", "reset=", "86400",
                       "actions=", "restart/5000/restart/30000/restart/60000")
    assert failureflag == ("sc.exe", "failureflag", "llama-orchestrator", "1")
    assert description[:3] == ("sc.exe", "description", "llama-orchestrator")
    assert start == ("sc.exe", "start", "llama-orchestrator")


def test_windows_service_only_on_windows() -> None:
    from llama_orchestrator.errors import UnsupportedPlatformError

    with pytest.raises(UnsupportedPlatformError):
        build_plan("linux", "logon", False, WINDOWS_HOME, WINDOWS_HOST.python, host=WINDOWS_HOST,
                   windows_service=True)


class FakeDaemon:
    """Stands in for run_daemon: blocks until stop_event is set (or returns at once if told to)."""

    def __init__(self, *, exit_unasked: bool = False) -> None:
        self.exit_unasked = exit_unasked
        self.started = threading.Event()
        self.paths: HomePaths | None = None

    def __call__(self, paths: HomePaths, stop_event: threading.Event) -> None:
        self.paths = paths
        self.started.set()
        if not self.exit_unasked:
            assert stop_event.wait(timeout=10)


def test_service_lifecycle_reports_start_running_and_stop(tmp_path: Path) -> None:
    reports: list[str] = []
    daemon = FakeDaemon()
    lifecycle = ServiceLifecycle(tmp_path, lambda state, _hint: reports.append(state), lambda: daemon)
    runner = threading.Thread(target=lifecycle.run)
    runner.start()
    assert daemon.started.wait(timeout=10)
    assert reports == ["start_pending", "running"]
    lifecycle.stop()
    runner.join(timeout=10)
    assert not runner.is_alive()
    assert reports == ["start_pending", "running", "stop_pending"]
    assert daemon.paths == HomePaths(tmp_path)


def test_service_lifecycle_fails_when_the_daemon_exits_unasked(tmp_path: Path) -> None:
    lifecycle = ServiceLifecycle(tmp_path, lambda _s, _h: None, lambda: FakeDaemon(exit_unasked=True))
    with pytest.raises(AutostartError, match="without being asked"):
        lifecycle.run()


def test_load_daemon_entry_resolves_a_dotted_name(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("fake_daemon_service")
    module.run_daemon = FakeDaemon()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_daemon_service", module)
    assert load_daemon_entry("fake_daemon_service:run_daemon") is module.run_daemon  # type: ignore[attr-defined]
    with pytest.raises(AutostartError):
        load_daemon_entry("fake_daemon_service:missing")
    with pytest.raises(AutostartError):
        load_daemon_entry("no_such_module_here:run_daemon")
    assert DAEMON_ENTRY_POINT == "llama_orchestrator.daemon.entry:run_daemon"


def test_windows_modules_import_without_pywin32() -> None:
    # Importing must not need pywin32; only building the service class does.
    for module in ("windows_service", "windows_task", "_service_host"):
        importlib.import_module(f"llama_orchestrator.autostart.{module}")
    assert "win32serviceutil" not in sys.modules
