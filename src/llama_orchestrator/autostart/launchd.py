"""macOS LaunchAgent for the daemon: a plist rendered with plistlib, loaded with `launchctl`.

Pure: `render_plist()` returns the XML text, `plan_launchd()` the file and the commands. A
LaunchAgent runs in the user's GUI session (`gui/<uid>`), which is where Metal is available;
a boot-time LaunchDaemon is not offered.
"""

from __future__ import annotations

import plistlib
from pathlib import PurePath

from llama_orchestrator.autostart.spec import (
    LAUNCHD_LABEL,
    STOP_TIMEOUT_S,
    Command,
    HostFacts,
    Mode,
    RenderedFile,
    ServicePlan,
    daemon_argv,
    entry_name,
)
from llama_orchestrator.config.paths import ENV_HOME, HomePaths
from llama_orchestrator.errors import UnsupportedPlatformError

PLIST_NAME = f"{LAUNCHD_LABEL}.plist"
"""The default home's agent; another home's label is `agent_label()`, its file `<label>.plist`."""


def agent_label(paths: HomePaths, host: HostFacts) -> str:
    """The agent of this home: `io.github.llama-orchestrator` for the default home, else with its hash."""
    return entry_name(LAUNCHD_LABEL, paths.home, host)


def render_plist(
    paths: HomePaths,
    python: PurePath,
    *,
    environment: tuple[tuple[str, str], ...] = (),
    stop_timeout_s: int = STOP_TIMEOUT_S,
    label: str = LAUNCHD_LABEL,
) -> str:
    """Render the LaunchAgent plist as XML text (`label`: `agent_label()`).

    `environment`: the forwarded variables of the installing shell (`spec.FORWARDED_ENV`).
    The daemon's stderr is a plain file here (StandardErrorPath, never rotated), so it runs with
    `--no-stderr-log`: its log is logs/daemon.log, and the err file keeps only crashes.
    """
    document = {
        "Label": label,
        "ProgramArguments": [*daemon_argv(python, paths.home), "--no-stderr-log"],
        "EnvironmentVariables": {ENV_HOME: str(paths.home), "PYTHONUNBUFFERED": "1", **dict(environment)},
        "RunAtLoad": True,
        # Restart after a crash, not after a clean `llama-orch daemon stop` (exit 0).
        "KeepAlive": {"SuccessfulExit": False},
        # Children are stopped or re-adopted by the daemon itself (like systemd KillMode=process);
        # by default launchd kills the job's whole process group when the daemon exits.
        "AbandonProcessGroup": True,
        # launchd's grace between SIGTERM and SIGKILL (default 20 s): longer than the daemon's
        # own stop, up to 2 x stop_grace_s per instance in parallel (spec.stop_timeout_s).
        "ExitTimeOut": stop_timeout_s,
        # Background jobs are throttled (CPU and I/O); inference must not be.
        "ProcessType": "Interactive",
        "StandardOutPath": str(paths.logs_dir / "launchd.out.log"),
        "StandardErrorPath": str(paths.logs_dir / "launchd.err.log"),
    }
    return plistlib.dumps(document, sort_keys=False).decode("utf-8")


def plan_launchd(
    paths: HomePaths,
    python: PurePath,
    host: HostFacts,
    *,
    mode: Mode = "logon",
    stop_timeout_s: int = STOP_TIMEOUT_S,
) -> ServicePlan:
    """Plan the plist in `~/Library/LaunchAgents` and the `launchctl` calls for the GUI domain.

    Raises:
        UnsupportedPlatformError: for `mode="boot"` (a LaunchDaemon has no GPU session).
        AutostartError: when the user's uid is unknown.
    """
    if mode == "boot":
        raise UnsupportedPlatformError(
            "--mode boot is not supported on macOS",
            hint="a LaunchAgent starts at logon; enable automatic login to start it at boot",
        )
    if host.uid is None:
        raise UnsupportedPlatformError("launchd needs the numeric user id (gui/<uid> domain)")
    label = agent_label(paths, host)
    domain = f"gui/{host.uid}"
    target = f"{domain}/{label}"
    plist_path = host.user_home / "Library" / "LaunchAgents" / f"{label}.plist"
    return ServicePlan(
        backend="launchd",
        name=label,
        files=(
            RenderedFile(
                plist_path,
                render_plist(paths, python, environment=host.environment, stop_timeout_s=stop_timeout_s, label=label),
            ),
        ),
        install_commands=(
            # bootstrap fails ("Input/output error") when the label is already loaded: unload first.
            Command(("launchctl", "bootout", target), check=False),
            Command(("launchctl", "enable", target)),
            Command(("launchctl", "bootstrap", domain, str(plist_path))),
        ),
        uninstall_commands=(Command(("launchctl", "bootout", target), check=False),),
        status_commands=(Command(("launchctl", "print", target), check=False),),
        notes=(
            f"The daemon logs to {paths.daemon_log}; {paths.logs_dir}/launchd.*.log keep only what "
            "it prints outside its log (a crash before logging starts, a traceback).",
            "The agent starts at logon (RunAtLoad) and is restarted after a crash (KeepAlive).",
        ),
    )
