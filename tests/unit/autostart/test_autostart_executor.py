"""Executor and status: atomic writes, command order, failures, and each backend's status reading."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from autostart_samples import LINUX_HOST, MAC_HOST, WINDOWS_HOST, ScriptedCommandRunner

from llama_orchestrator.autostart import CommandResult, RenderedFile, ServicePlan, apply, read_status, remove
from llama_orchestrator.autostart.launchd import plan_launchd
from llama_orchestrator.autostart.spec import Command
from llama_orchestrator.autostart.systemd import plan_systemd
from llama_orchestrator.autostart.windows_service import plan_windows_service
from llama_orchestrator.autostart.windows_task import plan_windows_task
from llama_orchestrator.config.paths import HomePaths
from llama_orchestrator.errors import AutostartError


def _plan(tmp_path: Path, *commands: Command) -> ServicePlan:
    return ServicePlan(
        backend="systemd",
        name="x.service",
        files=(RenderedFile(tmp_path / "deep" / "dir" / "x.service", "[Unit]\n", mode=0o640),),
        install_commands=commands,
        uninstall_commands=(Command(("off",), check=False),),
        post_uninstall_commands=(Command(("reload",)),),
    )


def test_apply_writes_files_with_mode_then_runs_commands_in_order(tmp_path: Path) -> None:
    runner = ScriptedCommandRunner()
    plan = _plan(tmp_path, Command(("a", "1")), Command(("b", "2 with space")))
    apply(plan, runner)
    written = plan.files[0].path
    assert written.read_text() == "[Unit]\n"
    assert stat.S_IMODE(written.stat().st_mode) == 0o640
    assert runner.calls == [("a", "1"), ("b", "2 with space")]
    assert [p.name for p in written.parent.iterdir()] == ["x.service"]  # no temp files left


def test_a_failing_checked_command_raises_with_its_stderr_and_stops(tmp_path: Path) -> None:
    runner = ScriptedCommandRunner(
        lambda argv: CommandResult(1, "", "Unit file x.service does not exist.") if argv[0] == "a" else CommandResult(0)
    )
    with pytest.raises(AutostartError, match=r"`a 1` failed with exit code 1: Unit file x.service does not exist"):
        apply(_plan(tmp_path, Command(("a", "1")), Command(("b",))), runner)
    assert runner.calls == [("a", "1")]


def test_an_unchecked_failure_is_ignored(tmp_path: Path) -> None:
    runner = ScriptedCommandRunner(lambda argv: CommandResult(5, "", "nope"))
    plan = _plan(tmp_path)
    remove(plan, ScriptedCommandRunner())  # nothing installed: still fine
    with pytest.raises(AutostartError):  # the post-uninstall reload is checked
        remove(plan, runner)
    assert runner.calls == [("off",), ("reload",)]


def test_remove_deletes_the_files(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    apply(plan, ScriptedCommandRunner())
    remove(plan, ScriptedCommandRunner())
    assert not plan.files[0].path.exists()


def test_write_failure_is_an_autostart_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    plan = ServicePlan(backend="systemd", name="x", files=(RenderedFile(blocker / "sub" / "x", ""),))
    with pytest.raises(AutostartError, match="cannot write"):
        apply(plan, ScriptedCommandRunner())


def _answers(table: dict[str, CommandResult]) -> ScriptedCommandRunner:
    def script(argv: tuple[str, ...]) -> CommandResult:
        for key, result in table.items():
            if key in argv:
                return result
        return CommandResult(0)

    return ScriptedCommandRunner(script)


def test_systemd_status_reads_is_enabled_and_is_active(tmp_path: Path) -> None:
    plan = plan_systemd(HomePaths(tmp_path), LINUX_HOST.python, LINUX_HOST, unit_dir=tmp_path / "units")
    apply(plan, ScriptedCommandRunner())
    runner = _answers({"is-enabled": CommandResult(0, "enabled\n"), "is-active": CommandResult(3, "failed\n")})
    status = read_status(plan, runner)
    assert (status.installed, status.enabled, status.active, status.state) == (True, True, False, "failed")
    assert list(status.files.values()) == [True]


def test_systemd_status_when_nothing_is_installed(tmp_path: Path) -> None:
    plan = plan_systemd(HomePaths(tmp_path), LINUX_HOST.python, LINUX_HOST, unit_dir=tmp_path / "units")
    runner = _answers({"is-enabled": CommandResult(1, "not-found\n"), "is-active": CommandResult(3, "inactive\n")})
    status = read_status(plan, runner)
    assert (status.installed, status.enabled, status.active) == (False, None, False)


def test_launchd_status_reads_launchctl_print(tmp_path: Path) -> None:
    host = MAC_HOST.__class__(python=MAC_HOST.python, user="ann", uid=501, user_home=tmp_path)
    plan = plan_launchd(HomePaths(tmp_path), MAC_HOST.python, host)
    running = _answers({"print": CommandResult(0, "gui/501/io.github.llama-orchestrator = {\n\tstate = running\n")})
    assert read_status(plan, running).active is True
    missing = _answers({"print": CommandResult(113, "", "Could not find service")})
    assert (read_status(plan, missing).enabled, read_status(plan, missing).state) == (False, "not loaded")


def test_windows_task_status_reads_schtasks_list_output(tmp_path: Path) -> None:
    plan = plan_windows_task(HomePaths(tmp_path), WINDOWS_HOST.python, WINDOWS_HOST, mode="logon")
    output = (
        "Folder: \\\nHostName: PC\nTaskName: \\llama-orchestrator\n"
        "Status: Running\nScheduled Task State: Enabled\n"
    )
    status = read_status(plan, _answers({"/Query": CommandResult(0, output)}))
    assert (status.installed, status.enabled, status.active, status.state) == (True, True, True, "Running")
    gone = read_status(plan, _answers({"/Query": CommandResult(1, "", "ERROR: The system cannot find the file")}))
    assert gone.installed is False


def test_windows_service_status_reads_numeric_sc_codes(tmp_path: Path) -> None:
    plan = plan_windows_service(HomePaths(tmp_path), WINDOWS_HOST)
    runner = _answers({
        "query": CommandResult(0, "SERVICE_NAME: llama-orchestrator\n        STATE              : 4  RUNNING\n"),
        "qc": CommandResult(0, "        START_TYPE         : 2   AUTO_START  (DELAYED)\n"),
    })
    status = read_status(plan, runner)
    assert (status.installed, status.enabled, status.active, status.state) == (True, True, True, "RUNNING")
    missing = _answers({"query": CommandResult(1060, "OpenService FAILED 1060")})
    assert read_status(plan, missing).installed is False
