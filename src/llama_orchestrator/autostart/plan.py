"""Pick the backend for a platform and build its `ServicePlan`; gather the host's facts once.

`build_plan()` is pure given a `HostFacts`; `current_host()` is the one place that reads the
running interpreter, user, directories (the default home among them) and environment, so the
renderers never do, and `home_stop_timeout_s()` the one that reads the home's configs (for the
stop timeout).
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import sys
import sysconfig
from collections.abc import Callable, Mapping
from pathlib import Path, PurePath, PureWindowsPath

from llama_orchestrator._platform import PlatformName
from llama_orchestrator.autostart.launchd import plan_launchd
from llama_orchestrator.autostart.spec import (
    STOP_TIMEOUT_S,
    HostFacts,
    Mode,
    ServicePlan,
    forwarded_environment,
    same_home,
    stop_timeout_s,
)
from llama_orchestrator.autostart.systemd import plan_systemd
from llama_orchestrator.autostart.windows_service import plan_windows_service
from llama_orchestrator.autostart.windows_task import plan_windows_task, windowless_interpreter
from llama_orchestrator.config.loader import load_fleet
from llama_orchestrator.config.paths import HomePaths, default_home
from llama_orchestrator.errors import UnsupportedPlatformError


def build_plan(
    platform: PlatformName,
    mode: Mode,
    system: bool,
    paths: HomePaths,
    python: PurePath,
    *,
    host: HostFacts,
    windows_service: bool = False,
    unit_dir: Path | None = None,
    exists: Callable[[PureWindowsPath], bool] | None = None,
    stop_timeout_s: int = STOP_TIMEOUT_S,
) -> ServicePlan:
    """Build the plan for `platform`: systemd, launchd, a scheduled task or a Windows service.

    `unit_dir` redirects the systemd unit (tests); `exists` checks for `pythonw.exe` beside
    `python` (defaults to the real file system); `stop_timeout_s` is how long systemd and launchd
    wait for the daemon to stop (`home_stop_timeout_s`). Task Scheduler has no such setting, and
    the Windows service reports its own wait hint.

    Raises:
        UnsupportedPlatformError: for a combination the platform does not offer.
    """
    if windows_service and platform != "windows":
        raise UnsupportedPlatformError("--windows-service is only available on Windows")
    if system and platform != "linux":
        raise UnsupportedPlatformError("--system is only available on Linux (systemd)")
    if platform == "linux":
        plan = plan_systemd(
            paths, python, host, mode=mode, system=system, unit_dir=unit_dir, stop_timeout_s=stop_timeout_s
        )
    elif platform == "macos":
        plan = plan_launchd(paths, python, host, mode=mode, stop_timeout_s=stop_timeout_s)
    elif windows_service:
        plan = plan_windows_service(paths, host)
    else:
        check = exists or (lambda candidate: Path(candidate).exists())
        plan = plan_windows_task(paths, windowless_interpreter(python, check), host, mode=mode)
    default = host.default_home
    if default is None or not same_home(paths.home, default, casefold=platform == "windows"):
        note = (f"The name carries a hash of this home ({paths.home}), so each home has its own entry; "
                f"`llama-orch --home \"{paths.home}\" service status` (or uninstall) finds it.")
        plan = dataclasses.replace(plan, notes=(*plan.notes, note))
    return plan


def home_stop_timeout_s(paths: HomePaths, environ: Mapping[str, str] = os.environ) -> int:
    """`spec.stop_timeout_s()` for the instances configured in `paths` now (valid configs only)."""
    fleet = load_fleet(paths, offline=True, environ=environ)
    return stop_timeout_s(config.restart.stop_grace_s for config in fleet.instances.values())


def current_host(environ: Mapping[str, str] = os.environ) -> HostFacts:
    """Read the facts of the running machine and environment (interpreter, user, directories,
    the `FORWARDED_ENV` variables of `environ`)."""
    python = Path(sys.executable)
    if sys.platform == "win32":
        domain = os.environ.get("USERDOMAIN")
        user = f"{domain}\\{getpass.getuser()}" if domain else getpass.getuser()
    else:
        user = getpass.getuser()
    config_home = os.environ.get("XDG_CONFIG_HOME")
    return HostFacts(
        python=python,
        user=user,
        uid=os.getuid() if hasattr(os, "getuid") else None,
        user_config_dir=Path(config_home) if config_home else Path.home() / ".config",
        user_home=Path.home(),
        # A venv's python.exe re-executes the base interpreter; the SCM needs the real one.
        base_python=Path(getattr(sys, "_base_executable", sys.executable)),
        site_packages=Path(sysconfig.get_paths()["purelib"]),
        service_host_script=Path(__file__).with_name("_service_host.py"),
        environment=forwarded_environment(environ),
        default_home=default_home(),
    )
