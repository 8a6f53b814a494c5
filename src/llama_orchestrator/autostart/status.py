"""Ask the service manager whether the autostart entry is installed, enabled and running.

Runs the plan's `status_commands` (all `check=False`) and reads their output per backend.
`enabled`/`active` are None when the platform's answer cannot be read (schtasks prints
localised labels, so on a non-English Windows only `installed` is certain). `home` is the home
whose daemon the entry runs, read from its `--home`: where a name could be another home's (two
users' default homes share the plain names of a machine-wide task or service), install and
uninstall check it before they replace or remove anything.
"""

from __future__ import annotations

import plistlib
import re
import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import PurePath
from typing import Any

from llama_orchestrator.autostart.executor import CommandResult, CommandRunner, run_commands
from llama_orchestrator.autostart.spec import Backend, ServicePlan, same_home
from llama_orchestrator.errors import AutostartError


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """The state of one autostart entry as the service manager reports it."""

    backend: Backend
    name: str
    installed: bool
    enabled: bool | None = None
    active: bool | None = None
    state: str = ""
    """The manager's own word for the state (`active`, `running`, `Ready`, `STOPPED`, ...)."""
    files: dict[str, bool] = field(default_factory=dict)
    """Each file the plan installs, and whether it exists."""
    home: str | None = None
    """The home whose daemon the installed entry runs; None when not installed or not readable."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def runs(self, home: PurePath) -> bool | None:
        """Whether the installed entry runs `home`'s daemon; None when not installed or not known."""
        if not self.installed or self.home is None:
            return None
        return same_home(self.home, home, casefold=self.backend in ("windows-task", "windows-service"))


def locate(plan: ServicePlan, legacy: ServicePlan | None, runner: CommandRunner,
           home: PurePath) -> tuple[ServicePlan, ServiceStatus]:
    """This home's entry and its status: `plan`'s, or `legacy`'s (the plain name, where an install
    from before names depended on the home is) when only that one is installed and runs `home`."""
    status = read_status(plan, runner)
    if not status.installed and legacy is not None:
        old = read_status(legacy, runner)
        if old.runs(home):
            return legacy, old
    return plan, status


def refuse_other_home(status: ServiceStatus, home: PurePath, doing: str) -> None:
    """Raise rather than replace or remove an entry that runs another home's daemon (two users'
    default homes share the plain name of a machine-wide task, service or system unit).

    Raises:
        AutostartError: naming that home and how to go on.
    """
    if status.runs(home) is False:
        raise AutostartError(
            f"{status.backend} {status.name} runs the daemon of another home ({status.home}), not this one "
            f"({home}): {doing} here would take that home's autostart away",
            hint=f'uninstall it from that home first (llama-orch --home "{status.home}" service uninstall), or keep '
            "this home in another directory (--home DIR or LLAMA_ORCH_HOME): a home other than your default one "
            "gets an entry named after it",
        )


_Reader = Callable[[list[CommandResult], bool], tuple[bool, bool | None, bool | None, str]]


def read_status(plan: ServicePlan, runner: CommandRunner) -> ServiceStatus:
    """Run the plan's status commands and interpret them for its backend."""
    files = {str(file.path): file.path.is_file() for file in plan.files}
    results = [result for _command, result in run_commands(plan.status_commands, runner)]
    files_present = bool(files) and all(files.values())
    installed, enabled, active, state = _READERS[plan.backend](results, files_present)
    home = _entry_home(plan, results) if installed else None
    return ServiceStatus(plan.backend, plan.name, installed, enabled, active, state, files, home)


_HOME_ARG = re.compile(r'--home\s+(?:"([^"]*)"|(\S+))')  # in a Windows command line (CRT quoting)


def _entry_home(plan: ServicePlan, results: list[CommandResult]) -> str | None:
    """The `--home` the installed entry runs the daemon with: from the unit or plist on disk, or
    from the command line schtasks (`Task To Run`) or sc.exe (`BINARY_PATH_NAME`) prints."""
    if plan.backend in ("windows-task", "windows-service"):
        found = _HOME_ARG.search("\n".join(result.stdout for result in results))
        return (found.group(1) or found.group(2)) if found else None
    try:
        data = plan.files[0].path.read_bytes()
        if plan.backend == "launchd":
            argv = [str(arg) for arg in plistlib.loads(data).get("ProgramArguments", [])]
        else:  # systemd: split ExecStart= as systemd does (quotes, C escapes; %% and $$ doubled)
            line = next((x for x in data.decode("utf-8").splitlines() if x.startswith("ExecStart=")), "")
            argv = shlex.split(line.removeprefix("ExecStart=").replace("%%", "%").replace("$$", "$"))
    except (OSError, ValueError, plistlib.InvalidFileException, AttributeError):
        return None
    return argv[argv.index("--home") + 1] if "--home" in argv[:-1] else None


def _systemd(results: list[CommandResult], files_present: bool) -> tuple[bool, bool | None, bool | None, str]:
    # `is-enabled` prints enabled/disabled/static/...; `is-active` prints active/inactive/failed/...
    enabled_word = results[0].stdout.strip()
    state = results[1].stdout.strip()
    enabled = {"enabled": True, "enabled-runtime": True, "disabled": False}.get(enabled_word)
    active = True if state == "active" else (False if state in ("inactive", "failed") else None)
    return files_present, enabled, active, state


def _launchd(results: list[CommandResult], files_present: bool) -> tuple[bool, bool | None, bool | None, str]:
    printed = results[0]
    if not printed.ok:  # "Could not find service ... in domain": not loaded
        return files_present, False, False, "not loaded"
    match = re.search(r"^\s*state = (\S+)", printed.stdout, re.MULTILINE)
    state = match.group(1) if match else "loaded"
    return files_present, True, state == "running", state


def _windows_task(results: list[CommandResult], files_present: bool) -> tuple[bool, bool | None, bool | None, str]:
    query = results[0]
    if not query.ok:
        return False, None, None, "not installed"
    # /V /FO LIST prints one block per trigger; the first block is enough.
    status = re.search(r"^Status:\s*(.+?)\s*$", query.stdout, re.MULTILINE)
    task_state = re.search(r"^Scheduled Task State:\s*(.+?)\s*$", query.stdout, re.MULTILINE)
    state = status.group(1) if status else ""
    enabled = task_state.group(1).lower() == "enabled" if task_state else None
    active = state.lower() == "running" if status else None
    return True, enabled, active, state


_SC_STATES = {"1": "STOPPED", "2": "START_PENDING", "3": "STOP_PENDING", "4": "RUNNING"}


def _windows_service(results: list[CommandResult], files_present: bool) -> tuple[bool, bool | None, bool | None, str]:
    query, config = results
    if not query.ok:  # 1060: the service does not exist
        return False, None, None, "not installed"
    # sc.exe prints numeric codes next to the names; the numbers do not depend on the language.
    state_code = re.search(r"STATE\s*:\s*(\d+)", query.stdout)
    start_type = re.search(r"START_TYPE\s*:\s*(\d+)", config.stdout)
    state = _SC_STATES.get(state_code.group(1), state_code.group(1)) if state_code else ""
    enabled = start_type.group(1) == "2" if start_type else None  # 2 = automatic (delayed or not)
    active = state == "RUNNING" if state_code else None
    return True, enabled, active, state


_READERS: dict[Backend, _Reader] = {
    "systemd": _systemd,
    "launchd": _launchd,
    "windows-task": _windows_task,
    "windows-service": _windows_service,
}
