"""Windows Task Scheduler task for the daemon, registered from XML with `schtasks /Create /XML`.

Pure: `render_task_xml()` returns the XML text; `plan_windows_task()` the file and the `schtasks`
commands. The text declares `encoding="UTF-16"` and the plan marks the file UTF-16, so the
executor writes it UTF-16 with a BOM: that is the encoding schtasks expects when it reads /XML
(a UTF-8 file with non-ASCII user or path names is misread or rejected).

Two modes, two trade-offs:
- `logon` (default): a LogonTrigger for the installing user and an InteractiveToken principal.
  The daemon runs in the user's desktop session, where consumer GPU drivers (Vulkan, CUDA on
  WDDM) behave as in a terminal; it starts only once the user logs on, and needs no admin rights.
- `boot`: a BootTrigger and the LocalSystem account (S-1-5-18, highest privileges). It starts
  without anyone logging on, but runs in session 0 with SYSTEM's profile; needs an elevated
  install. The home is still the user's (`--home` is explicit), so files the daemon creates
  there are owned by SYSTEM. Running as the user at boot instead needs the user's password
  stored with the task (LogonType Password, `schtasks /RU user /RP ...`), which we do not ask for.

Restart: `RestartOnFailure` restarts the task when Task Scheduler sees it fail (every minute,
999 times); it does not reliably treat a non-zero exit of the program as a failure, so a
repeating time trigger every 5 minutes with `MultipleInstancesPolicy IgnoreNew` also starts the
daemon again if it died (it is a no-op while the daemon runs). The Windows service mode
(`windows_service`) has the SCM's recovery actions and is the stronger choice for servers.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import PurePath, PureWindowsPath
from xml.sax.saxutils import escape

from llama_orchestrator.autostart.spec import (
    SERVICE_NAME,
    Command,
    HostFacts,
    Mode,
    RenderedFile,
    ServicePlan,
    daemon_argv,
    entry_name,
)
from llama_orchestrator.config.paths import HomePaths

TASK_NAMESPACE = "http://schemas.microsoft.com/windows/2004/02/mit/task"
LOCAL_SYSTEM_SID = "S-1-5-18"
TASK_FILE_NAME = f"{SERVICE_NAME}.task.xml"
# A TimeTrigger needs a start boundary; any past date makes it active at once.
_WATCHDOG_START = "2024-01-01T00:00:00"


def task_name(paths: HomePaths, host: HostFacts) -> str:
    """The task of this home: `llama-orchestrator` for the default home, else with its hash (task
    names are machine-wide, and so is a Windows service's)."""
    return entry_name(SERVICE_NAME, paths.home, host, casefold=True)


def windowless_interpreter(python: PurePath, exists: Callable[[PureWindowsPath], bool]) -> PureWindowsPath:
    """Prefer `pythonw.exe` beside `python.exe`, so the task opens no console window."""
    interpreter = PureWindowsPath(str(python))
    if interpreter.name.lower() == "python.exe":
        candidate = interpreter.with_name("pythonw.exe")
        if exists(candidate):
            return candidate
    return interpreter


def render_task_xml(
    paths: HomePaths,
    python: PurePath,
    *,
    mode: Mode,
    user: str,
    environment: tuple[tuple[str, str], ...] = (),
    name: str = SERVICE_NAME,
) -> str:
    """Render the task definition (Task Scheduler schema 1.2) as text, to be written UTF-16
    (`name`: `task_name()`).

    A task has no environment of its own: the forwarded variables (`spec.FORWARDED_ENV`) go on
    the command line as `daemon run --env NAME=VALUE`, which sets them before the daemon starts.
    """
    argv = daemon_argv(PureWindowsPath(str(python)), paths.home)
    argv += tuple(arg for name, value in environment for arg in ("--env", f"{name}={value}"))
    # Quoted as Task Scheduler's own exports do, so a path with spaces is one program name.
    command = escape(f'"{argv[0]}"' if " " in argv[0] else argv[0])
    # The program parses its own command line (CRT rules); list2cmdline is exactly those rules.
    arguments = escape(subprocess.list2cmdline(argv[1:]))
    if mode == "logon":
        trigger = (
            "    <LogonTrigger>\n"
            "      <Enabled>true</Enabled>\n"
            f"      <UserId>{escape(user)}</UserId>\n"
            "      <!-- let the desktop and GPU driver settle before loading models -->\n"
            "      <Delay>PT30S</Delay>\n"
            "    </LogonTrigger>\n"
        )
        principal = (
            f"      <UserId>{escape(user)}</UserId>\n"
            "      <!-- InteractiveToken: run in the user's desktop session, where the GPU\n"
            "           drivers (Vulkan, CUDA on WDDM) work as they do in a terminal -->\n"
            "      <LogonType>InteractiveToken</LogonType>\n"
            "      <RunLevel>LeastPrivilege</RunLevel>\n"
        )
    else:
        trigger = (
            "    <BootTrigger>\n"
            "      <Enabled>true</Enabled>\n"
            "      <Delay>PT1M</Delay>\n"
            "    </BootTrigger>\n"
        )
        principal = (
            "      <!-- LocalSystem: starts without a logon; session 0, no desktop -->\n"
            f"      <UserId>{LOCAL_SYSTEM_SID}</UserId>\n"
            "      <RunLevel>HighestAvailable</RunLevel>\n"
        )
    return (
        '<?xml version="1.0" encoding="UTF-16"?>\n'
        "<!-- Written by `llama-orch service install`; run it again instead of editing this task. -->\n"
        f'<Task version="1.2" xmlns="{TASK_NAMESPACE}">\n'
        "  <RegistrationInfo>\n"
        f"    <Author>{escape(user)}</Author>\n"
        "    <Description>llama-orchestrator daemon: supervises the llama.cpp llama-server"
        " instances.</Description>\n"
        f"    <URI>\\{escape(name)}</URI>\n"
        "  </RegistrationInfo>\n"
        "  <Triggers>\n"
        f"{trigger}"
        "    <!-- watchdog: starts the daemon again if it died (IgnoreNew makes it a no-op otherwise) -->\n"
        "    <TimeTrigger>\n"
        f"      <StartBoundary>{_WATCHDOG_START}</StartBoundary>\n"
        "      <Enabled>true</Enabled>\n"
        "      <Repetition>\n"
        "        <Interval>PT5M</Interval>\n"
        "        <StopAtDurationEnd>false</StopAtDurationEnd>\n"
        "      </Repetition>\n"
        "    </TimeTrigger>\n"
        "  </Triggers>\n"
        "  <Principals>\n"
        '    <Principal id="Author">\n'
        f"{principal}"
        "    </Principal>\n"
        "  </Principals>\n"
        "  <Settings>\n"
        "    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>\n"
        "    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>\n"
        "    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>\n"
        "    <AllowHardTerminate>true</AllowHardTerminate>\n"
        "    <StartWhenAvailable>true</StartWhenAvailable>\n"
        "    <RunOnlyIfNetworkAvailable>false</RunOnlyIfNetworkAvailable>\n"
        "    <IdleSettings>\n"
        "      <StopOnIdleEnd>false</StopOnIdleEnd>\n"
        "      <RestartOnIdle>false</RestartOnIdle>\n"
        "    </IdleSettings>\n"
        "    <AllowStartOnDemand>true</AllowStartOnDemand>\n"
        "    <Enabled>true</Enabled>\n"
        "    <Hidden>true</Hidden>\n"
        "    <RunOnlyIfIdle>false</RunOnlyIfIdle>\n"
        "    <WakeToRun>false</WakeToRun>\n"
        "    <!-- PT0S = no limit; the default PT72H stops the daemon after 3 days -->\n"
        "    <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>\n"
        "    <!-- 4-6 = normal priority class; the default 7 is below normal, and every\n"
        "         llama-server the daemon starts would inherit it -->\n"
        "    <Priority>5</Priority>\n"
        "    <RestartOnFailure>\n"
        "      <Interval>PT1M</Interval>\n"
        "      <Count>999</Count>\n"
        "    </RestartOnFailure>\n"
        "  </Settings>\n"
        '  <Actions Context="Author">\n'
        "    <Exec>\n"
        f"      <Command>{command}</Command>\n"
        f"      <Arguments>{arguments}</Arguments>\n"
        f"      <WorkingDirectory>{escape(str(paths.home))}</WorkingDirectory>\n"
        "    </Exec>\n"
        "  </Actions>\n"
        "</Task>\n"
    )


def plan_windows_task(paths: HomePaths, python: PurePath, host: HostFacts, *, mode: Mode) -> ServicePlan:
    """Plan the task XML (kept in the home, UTF-16) and the `schtasks` calls.

    `python` should already be the windowless interpreter (`windowless_interpreter`).
    """
    name = task_name(paths, host)
    xml_path = paths.home / "autostart" / TASK_FILE_NAME
    stop_daemon = (*daemon_argv(host.python, paths.home)[:-1], "stop")
    notes = [
        "The task XML is written UTF-16 with a BOM, the encoding schtasks reads with /XML.",
        f"Task Scheduler shows the task as {name!r} (hidden: tick 'Show Hidden Tasks').",
    ]
    if mode == "boot":
        notes.append("Boot mode runs as LocalSystem and needs an elevated (administrator) prompt.")
    return ServicePlan(
        backend="windows-task",
        name=name,
        files=(
            RenderedFile(
                xml_path,
                render_task_xml(paths, python, mode=mode, user=host.user, environment=host.environment, name=name),
                encoding="utf-16",
            ),
        ),
        install_commands=(
            Command(("schtasks", "/Create", "/TN", name, "/XML", str(xml_path), "/F")),
            Command(("schtasks", "/Run", "/TN", name)),
        ),
        uninstall_commands=(
            # A graceful stop first: `schtasks /End` would terminate the daemon without cleanup.
            Command(stop_daemon, check=False),
            Command(("schtasks", "/End", "/TN", name), check=False),
            Command(("schtasks", "/Delete", "/TN", name, "/F"), check=False),
        ),
        status_commands=(Command(("schtasks", "/Query", "/TN", name, "/V", "/FO", "LIST"), check=False),),
        notes=tuple(notes),
    )
