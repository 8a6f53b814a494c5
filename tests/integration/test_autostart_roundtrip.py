"""install → status → uninstall through `llama-orch service`, for every backend, on this Linux box.

The service managers are faked at the process boundary: one small fake program, installed under
the names `systemctl`, `loginctl`, `launchctl`, `schtasks`, `sc.exe` and `python.exe` in a temp
directory at the front of PATH, keeps their state in a JSON file and logs every argv. The real
`SubprocessCommandRunner` runs it, and files are written under a temp home and unit directory.
"""

from __future__ import annotations

import http.server
import json
import os
import plistlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import typer
from tests.support.orch import LLAMA_ORCH
from typer.testing import CliRunner

from llama_orchestrator.autostart import HostFacts, SubprocessCommandRunner
from llama_orchestrator.cli.service import ServiceDeps, service_app
from llama_orchestrator.config.paths import HomePaths
from llama_orchestrator.errors import AutostartError

pytestmark = pytest.mark.integration

FAKE_SERVICE_MANAGER = r'''
import json, os, sys
from pathlib import Path

tool = Path(sys.argv[0]).name
args = sys.argv[1:]
state_file = Path(os.environ["FAKE_SM_STATE"])
state = json.loads(state_file.read_text()) if state_file.exists() else {}
with open(os.environ["FAKE_SM_LOG"], "a") as log:
    log.write(json.dumps([tool, *args]) + "\n")

def save():
    state_file.write_text(json.dumps(state))

def fail(code, message):
    sys.stderr.write(message + "\n")
    sys.exit(code)

if tool == "systemctl":
    args = [a for a in args if a != "--user"]
    units = state.setdefault("units", {})
    verb, rest = args[0], args[1:]
    unit = rest[-1] if rest else None
    if verb in ("daemon-reload", "reset-failed"):
        pass
    elif verb == "enable":
        if not (Path(os.environ["FAKE_UNIT_DIR"]) / unit).is_file():
            fail(1, f"Failed to enable unit: Unit file {unit} does not exist.")
        units[unit] = {"enabled": True, "active": "--now" in rest}
    elif verb == "disable":
        if unit not in units:
            fail(1, f"Failed to disable unit: Unit file {unit} does not exist.")
        units[unit] = {"enabled": False, "active": False}
    elif verb == "is-enabled":
        if unit not in units:
            print("not-found"); sys.exit(1)
        print("enabled" if units[unit]["enabled"] else "disabled"); sys.exit(0 if units[unit]["enabled"] else 1)
    elif verb == "is-active":
        active = units.get(unit, {}).get("active", False)
        print("active" if active else "inactive"); sys.exit(0 if active else 3)
elif tool == "loginctl":
    state.setdefault("linger", []).append(args[1])
elif tool == "launchctl":
    loaded = state.setdefault("loaded", [])
    if args[0] == "bootstrap":
        label = Path(args[2]).stem
        if not Path(args[2]).is_file():
            fail(5, "Bootstrap failed: 5: Input/output error")
        if label in loaded:
            fail(5, "Bootstrap failed: 5: Input/output error")
        loaded.append(label)
    elif args[0] == "bootout":
        label = args[1].rsplit("/", 1)[1]
        if label not in loaded:
            fail(3, "Boot-out failed: 3: No such process")
        loaded.remove(label)
    elif args[0] == "print":
        label = args[1].rsplit("/", 1)[1]
        if label not in loaded:
            fail(113, f"Could not find service \"{label}\" in domain for user gui: 501")
        print(f"{args[1]} = {{\n\tstate = running\n}}")
elif tool == "schtasks":
    tasks = state.setdefault("tasks", {})
    runs = state.setdefault("task_runs", {})
    name = args[args.index("/TN") + 1]
    if args[0] == "/Create":
        data = Path(args[args.index("/XML") + 1]).read_bytes()
        if data[:2] != b"\xff\xfe":
            fail(1, "ERROR: The task XML is malformed.")
        import xml.etree.ElementTree as ET
        ns = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
        exec_ = ET.fromstring(data).find("t:Actions/t:Exec", ns)
        tasks[name] = "Ready"
        runs[name] = exec_.findtext("t:Command", namespaces=ns) + " " + exec_.findtext("t:Arguments", namespaces=ns)
    elif name not in tasks:
        fail(1, "ERROR: The system cannot find the file specified.")
    elif args[0] == "/Run":
        tasks[name] = "Running"
    elif args[0] == "/End":
        tasks[name] = "Ready"
    elif args[0] == "/Delete":
        del tasks[name]
        del runs[name]
    elif args[0] == "/Query":
        print(f"TaskName: \\{name}\nStatus: {tasks[name]}\nTask To Run: {runs[name]}\nScheduled Task State: Enabled")
elif tool == "sc.exe":
    services = state.setdefault("services", {})
    verb, name = args[0], args[1]
    if verb == "create":
        services[name] = {"state": "1  STOPPED", "binPath": args[args.index("binPath=") + 1]}
    elif name not in services:
        print(f"[SC] OpenService FAILED 1060:\n\nThe specified service does not exist as an installed service.")
        sys.exit(1060)
    elif verb == "start":
        services[name]["state"] = "4  RUNNING"
    elif verb == "stop":
        services[name]["state"] = "1  STOPPED"
    elif verb == "delete":
        del services[name]
    elif verb == "query":
        print(f"SERVICE_NAME: {name}\n        STATE              : {services[name]['state']}")
    elif verb == "qc":
        print("        START_TYPE         : 2   AUTO_START  (DELAYED)")
        print(f"        BINARY_PATH_NAME   : {services[name]['binPath']}")
save()
'''

TOOLS = ("systemctl", "loginctl", "launchctl", "schtasks", "sc.exe", "python.exe")


class FakeServiceManagers:
    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bin = root / "fake bin"
        self.bin.mkdir()
        for tool in TOOLS:
            program = self.bin / tool
            program.write_text(f"#!{sys.executable}\n{FAKE_SERVICE_MANAGER}")
            program.chmod(0o755)
        self.state_file = root / "state.json"
        self.log_file = root / "calls.log"
        self.unit_dir = root / "units"
        monkeypatch.setenv("PATH", f"{self.bin}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("FAKE_SM_STATE", str(self.state_file))
        monkeypatch.setenv("FAKE_SM_LOG", str(self.log_file))
        monkeypatch.setenv("FAKE_UNIT_DIR", str(self.unit_dir))

    def calls(self) -> list[list[str]]:
        if not self.log_file.exists():
            return []
        return [json.loads(line) for line in self.log_file.read_text().splitlines()]

    def state(self) -> dict[str, object]:
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {}


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeServiceManagers:
    return FakeServiceManagers(tmp_path, monkeypatch)


@pytest.fixture
def home(tmp_path: Path) -> HomePaths:
    return HomePaths(tmp_path / "orch home").ensure()


def _cli(  # type: ignore[no-untyped-def]
    home: HomePaths,
    fakes: FakeServiceManagers,
    platform: str,
    tmp_path: Path,
    environment: tuple[tuple[str, str], ...] = (),
    default_home: Path | None = None,
):
    """`llama-orch service` for `home`, on `platform`; `home` is the user's default home unless
    `default_home` says otherwise."""
    host = HostFacts(
        python=fakes.bin / "python.exe",
        user="ann",
        uid=501,
        user_config_dir=tmp_path / "config",
        user_home=tmp_path / "user home",
        site_packages=tmp_path / "site packages",
        service_host_script=tmp_path / "host" / "_service_host.py",
        environment=environment,
        default_home=default_home or home.home,
    )
    deps = ServiceDeps(
        runner=SubprocessCommandRunner(timeout_s=30),
        host=host,
        platform=platform,  # type: ignore[arg-type]
        unit_dir=fakes.unit_dir if platform == "linux" else None,
    )
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = SimpleNamespace(paths=home, service_deps=deps)

    app.add_typer(service_app, name="service")

    def run(*args: str, expect_error: bool = False) -> Any:
        result = CliRunner().invoke(app, ["service", *args], prog_name="llama-orch")
        if expect_error:
            return result.exception
        assert result.exit_code == 0, f"{args}: {result.output}\n{result.exception!r}"
        return result.output

    return run


def _status(run, *flags: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return json.loads(run("status", "--json", *flags))


def test_systemd_user_unit_round_trip(home: HomePaths, fakes: FakeServiceManagers, tmp_path: Path) -> None:
    run = _cli(home, fakes, "linux", tmp_path)
    assert _status(run)["installed"] is False

    run("install", "--mode", "boot")
    unit = fakes.unit_dir / "llama-orchestrator.service"
    assert "KillMode=process" in unit.read_text()
    assert f'--home "{home.home}"' in unit.read_text()
    status = _status(run)
    assert (status["installed"], status["enabled"], status["active"]) == (True, True, True)

    run("uninstall")
    assert not unit.exists()
    status = _status(run)
    assert (status["installed"], status["active"]) == (False, False)
    assert [c for c in fakes.calls() if c[0] != "systemctl" or c[2] not in ("is-enabled", "is-active")] == [
        ["loginctl", "enable-linger", "ann"],
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", "--now", "llama-orchestrator.service"],
        ["systemctl", "--user", "disable", "--now", "llama-orchestrator.service"],
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "reset-failed", "llama-orchestrator.service"],
    ]
    run("uninstall")  # idempotent


def test_launchd_round_trip(home: HomePaths, fakes: FakeServiceManagers, tmp_path: Path) -> None:
    run = _cli(home, fakes, "macos", tmp_path)
    run("install")
    plist = tmp_path / "user home" / "Library" / "LaunchAgents" / "io.github.llama-orchestrator.plist"
    assert plist.is_file()
    status = _status(run)
    assert (status["installed"], status["enabled"], status["active"]) == (True, True, True)
    run("install")  # reinstall: bootout first, so bootstrap does not fail
    run("uninstall")
    assert not plist.exists()
    assert _status(run)["installed"] is False


def test_windows_task_round_trip(home: HomePaths, fakes: FakeServiceManagers, tmp_path: Path) -> None:
    run = _cli(home, fakes, "windows", tmp_path)
    run("install", "--mode", "logon")
    xml = home.home / "autostart" / "llama-orchestrator.task.xml"
    assert xml.read_bytes()[:2] == b"\xff\xfe"
    status = _status(run)
    assert (status["installed"], status["enabled"], status["active"], status["state"]) == (
        True, True, True, "Running",
    )
    run("uninstall")
    assert not xml.exists()
    assert _status(run)["installed"] is False
    stop = [c for c in fakes.calls() if c[0] == "python.exe"]
    assert stop == [["python.exe", "-m", "llama_orchestrator", "--home", str(home.home), "daemon", "stop"]]


def test_windows_service_round_trip(home: HomePaths, fakes: FakeServiceManagers, tmp_path: Path) -> None:
    run = _cli(home, fakes, "windows", tmp_path)
    run("install", "--windows-service")
    status = json.loads(run("status", "--windows-service", "--json"))
    assert (status["installed"], status["enabled"], status["active"]) == (True, True, True)
    run("uninstall", "--windows-service")
    assert json.loads(run("status", "--windows-service", "--json"))["installed"] is False
    assert [c[:2] for c in fakes.calls() if c[1] not in ("query", "qc")] == [
        ["sc.exe", "create"], ["sc.exe", "description"], ["sc.exe", "failure"],
        ["sc.exe", "failureflag"], ["sc.exe", "start"], ["sc.exe", "stop"], ["sc.exe", "delete"],
    ]


@pytest.mark.parametrize(
    ("platform", "args"),
    [("linux", ()), ("linux", ("--system",)), ("macos", ()), ("windows", ("--mode", "boot")),
     ("windows", ("--windows-service",))],
)
def test_dry_run_prints_files_and_commands_and_changes_nothing(
    home: HomePaths, fakes: FakeServiceManagers, tmp_path: Path, platform: str, args: tuple[str, ...]
) -> None:
    run = _cli(home, fakes, platform, tmp_path)
    before = sorted(p for p in tmp_path.rglob("*"))
    output = run("install", "--dry-run", *args)
    output += run("uninstall", "--dry-run", *[a for a in args if a != "--mode" and a != "boot"])
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert fakes.calls() == []
    assert "$ " in output
    if "--windows-service" not in args:
        assert "# file " in output and "# remove " in output


def test_a_failing_service_manager_reports_the_command_and_its_stderr(
    home: HomePaths, fakes: FakeServiceManagers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _cli(home, fakes, "linux", tmp_path)
    monkeypatch.setenv("FAKE_UNIT_DIR", str(tmp_path / "elsewhere"))  # systemd cannot see the unit
    error = run("install", expect_error=True)
    assert isinstance(error, AutostartError)
    assert error.exit_code == 8
    assert "systemctl --user enable --now llama-orchestrator.service" in str(error)
    assert "Unit file llama-orchestrator.service does not exist" in str(error)


def _instance(home: HomePaths, name: str, stop_grace_s: float) -> None:
    config = home.instances_dir / name / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({
        "model": {"path": str(home.home / "m.gguf")}, "server": {"port": 18001},
        "restart": {"stop_grace_s": stop_grace_s},
    }))


def _dry_run(home: HomePaths, env: dict[str, str], *args: str) -> str:
    """The real `llama-orch service install --dry-run` (this host: Linux), in `env`."""
    result = subprocess.run(
        [str(LLAMA_ORCH), "--home", str(home.home), "service", "install", "--dry-run", *args],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.skipif(sys.platform != "linux", reason="renders the systemd unit of this host")
def test_dry_run_unit_carries_the_llama_server_path_of_the_installing_shell(home: HomePaths, tmp_path: Path) -> None:
    server = str(tmp_path / "llama cpp" / "llama-server")
    base = {k: v for k, v in os.environ.items() if not k.startswith("LLAMA_ORCH_") or k == "LLAMA_ORCH_HOME"}
    with_server = _dry_run(home, {**base, "LLAMA_ORCH_LLAMA_SERVER": server, "SOME_API_KEY": "sk-secret"})
    assert f'Environment="LLAMA_ORCH_LLAMA_SERVER={server}"' in with_server.splitlines()
    assert "sk-secret" not in with_server
    assert "LLAMA_ORCH_LLAMA_SERVER" not in _dry_run(home, base)


@pytest.mark.skipif(sys.platform != "linux", reason="renders the systemd unit of this host")
def test_unit_stop_timeout_covers_the_longest_stop_grace(home: HomePaths) -> None:
    assert "TimeoutStopSec=90" in _dry_run(home, dict(os.environ)).splitlines()
    _instance(home, "quick", 5)
    _instance(home, "slow", 60)
    assert "TimeoutStopSec=150" in _dry_run(home, dict(os.environ)).splitlines()


def test_installed_plist_carries_the_environment_and_the_stop_timeout(
    home: HomePaths, fakes: FakeServiceManagers, tmp_path: Path
) -> None:
    _instance(home, "slow", 100)
    run = _cli(home, fakes, "macos", tmp_path, environment=(("LLAMA_ORCH_LLAMA_SERVER", "/opt/llama-server"),))
    run("install")
    plist = tmp_path / "user home" / "Library" / "LaunchAgents" / "io.github.llama-orchestrator.plist"
    document = plistlib.loads(plist.read_bytes())
    assert document["EnvironmentVariables"]["LLAMA_ORCH_LLAMA_SERVER"] == "/opt/llama-server"
    assert document["ExitTimeOut"] == 230
    run("uninstall")


BACKENDS = [("linux", ()), ("macos", ()), ("windows", ()), ("windows", ("--windows-service",))]


@pytest.mark.parametrize(("platform", "flags"), BACKENDS, ids=["systemd", "launchd", "windows-task", "windows-service"])
def test_two_homes_install_side_by_side_and_each_finds_its_own_entry(
    home: HomePaths, fakes: FakeServiceManagers, tmp_path: Path, platform: str, flags: tuple[str, ...]
) -> None:
    """The default home and a second one (LLAMA_ORCH_HOME) of the same user: neither install
    overwrites the other's entry, and status and uninstall act on the home's own."""
    second = HomePaths(tmp_path / "second home").ensure()
    first_cli = _cli(home, fakes, platform, tmp_path)
    second_cli = _cli(second, fakes, platform, tmp_path, default_home=home.home)
    first_cli("install", *flags)
    second_cli("install", *flags)
    first, other = _status(first_cli, *flags), _status(second_cli, *flags)
    assert first["name"] != other["name"], (first, other)
    assert (first["installed"], first["active"], first["home"]) == (True, True, str(home.home))
    assert (other["installed"], other["active"], other["home"]) == (True, True, str(second.home))
    assert f"home:    {second.home}" in second_cli("status", *flags)

    second_cli("uninstall", *flags)
    assert _status(second_cli, *flags)["installed"] is False
    first = _status(first_cli, *flags)
    assert (first["installed"], first["active"], first["home"]) == (True, True, str(home.home))
    first_cli("uninstall", *flags)
    assert _status(first_cli, *flags)["installed"] is False


def test_an_entry_named_before_names_depended_on_the_home_is_found_removed_and_renamed(
    home: HomePaths, fakes: FakeServiceManagers, tmp_path: Path
) -> None:
    """A home other than the default, installed when every home's unit was
    llama-orchestrator.service: status and uninstall find it there, and install renames it
    rather than adding a second unit (two daemons for one home)."""
    old = _cli(home, fakes, "linux", tmp_path)  # what the old version did: the plain name
    new = _cli(home, fakes, "linux", tmp_path, default_home=tmp_path / "default home")
    plain = fakes.unit_dir / "llama-orchestrator.service"
    old("install")
    status = _status(new)
    assert (status["name"], status["installed"], status["home"]) == (plain.name, True, str(home.home))
    assert "`llama-orch service install` renames it llama-orchestrator-" in " ".join(new("status").split())
    new("uninstall")
    assert not plain.exists()
    assert json.loads(fakes.state_file.read_text())["units"][plain.name] == {"enabled": False, "active": False}

    old("install")
    installed = new("install")
    assert "removed systemd llama-orchestrator.service" in installed, installed
    assert [p.name for p in fakes.unit_dir.iterdir()] == [_status(new)["name"]]
    assert str(_status(new)["name"]).startswith("llama-orchestrator-") and _status(new)["active"] is True
    assert json.loads(fakes.state_file.read_text())["units"][plain.name] == {"enabled": False, "active": False}


@pytest.mark.parametrize("flags", [(), ("--windows-service",)], ids=["windows-task", "windows-service"])
def test_a_machine_wide_name_that_runs_another_home_is_neither_replaced_nor_removed(
    home: HomePaths, fakes: FakeServiceManagers, tmp_path: Path, flags: tuple[str, ...]
) -> None:
    """Two users' default homes both have the plain name, and Windows task and service names are
    machine-wide: the second user's install or uninstall would take the first one's daemon."""
    ann = _cli(home, fakes, "windows", tmp_path)
    ann("install", *flags)
    bob_home = HomePaths(tmp_path / "bob").ensure()
    bob = _cli(bob_home, fakes, "windows", tmp_path, default_home=bob_home.home)
    for action in ("install", "uninstall"):
        error = bob(action, *flags, expect_error=True)
        assert isinstance(error, AutostartError) and error.exit_code == 8, error
        assert f"llama-orchestrator runs the daemon of another home ({home.home})" in str(error)
        assert f'llama-orch --home "{home.home}" service uninstall' in (error.hint or "")
    said = " ".join(bob("status", *flags).split())
    assert f"it runs the daemon of another home, not this one ({bob_home.home})" in said, said
    status = _status(ann, *flags)
    assert (status["installed"], status["active"], status["home"]) == (True, True, str(home.home))


@pytest.mark.skipif(sys.platform != "linux", reason="renders the systemd unit of this host")
def test_dry_run_file_header_is_one_line_however_narrow_the_output(home: HomePaths) -> None:
    output = _dry_run(home, {**os.environ, "COLUMNS": "30"})
    headers = [line for line in output.splitlines() if line.startswith("# file ")]
    assert len(headers) == 1, output
    assert headers[0].endswith(".service (mode 0644, utf-8)"), output


@pytest.fixture
def daemon_outside(home: HomePaths) -> Iterator[int]:
    """A daemon `daemon start` left holding `home`, as the client sees one: a control file naming
    an HTTP server that answers (a 404 proves it lives, as for a daemon older than /v1/ping)."""
    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    home.control_file.parent.mkdir(parents=True, exist_ok=True)
    home.control_file.write_text(json.dumps({"host": "127.0.0.1", "port": server.server_address[1],
                                             "token": "t", "pid": 4242}))
    try:
        yield 4242
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def test_install_says_how_to_hand_over_from_a_daemon_already_running(
    home: HomePaths, fakes: FakeServiceManagers, tmp_path: Path, daemon_outside: int
) -> None:
    run = _cli(home, fakes, "linux", tmp_path)
    for output in (run("install", "--dry-run"), run("install")):
        said = " ".join(output.split())
        assert f"a daemon (pid {daemon_outside}) already runs for {home.home} outside the service manager" in said
        assert "would exit 3 (already running)" in said and "`llama-orch daemon stop --keep-instances`" in said
    assert "already runs" not in run("install")  # now the service's own: active, nothing to hand over
