"""A real Windows service for the daemon: the SCM handshake (pywin32) and the `sc.exe` install plan.

Two halves:
- `plan_windows_service()` is pure: the `sc.exe` commands that create the service with delayed
  automatic start, recovery actions (restart after 5 s, 30 s, 60 s; counter reset after a day)
  and `failureflag 1`, so a daemon that stops with an error is restarted too, not only a crash.
- `ServiceLifecycle` is what the service does when the SCM starts and stops it; it reports
  through an injected callback, so it is tested on Linux. `build_service_class()` wraps it in a
  `win32serviceutil.ServiceFramework` subclass and `host_service()` hands that to the SCM's
  dispatcher. pywin32 is imported only inside those two functions: this module imports anywhere.

How the SCM starts it: `binPath` runs `_service_host.py` with the environment's *base*
interpreter. A venv's `python.exe` is a launcher that re-executes the base interpreter as a
child, and the SCM accepts the dispatcher connection only from the process it started (error
1053 otherwise); `_service_host.py` adds the venv's site-packages with `site.addsitedir` (which
also runs pywin32's .pth bootstrap) and then calls `host_service()`.

The daemon itself is reached through `DAEMON_ENTRY_POINT`, a dotted name resolved at run time:
autostart (L3) must not import daemon (L4), and the daemon is the composition root that owns
the foreground entry point. The assumed signature is
`run_daemon(paths: HomePaths, stop_event: threading.Event) -> None`, blocking until the event
is set and the daemon has stopped its instances.
"""

from __future__ import annotations

import importlib
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, cast

from llama_orchestrator.autostart.spec import (
    SERVICE_NAME,
    STOP_TIMEOUT_S,
    Command,
    HostFacts,
    ServicePlan,
    entry_name,
)
from llama_orchestrator.config.paths import HomePaths, resolve_home
from llama_orchestrator.errors import AutostartError

DAEMON_ENTRY_POINT = "llama_orchestrator.daemon.entry:run_daemon"
DISPLAY_NAME = "llama-orchestrator"
DESCRIPTION = "Supervises llama.cpp llama-server instances and serves one OpenAI-compatible endpoint."
START_WAIT_HINT_MS = 30_000
STOP_WAIT_HINT_MS = (STOP_TIMEOUT_S + 5) * 1000

DaemonEntry = Callable[[HomePaths, threading.Event], None]
ServiceState = Literal["start_pending", "running", "stop_pending"]
StatusReporter = Callable[[ServiceState, int], None]


def load_daemon_entry(spec: str = DAEMON_ENTRY_POINT) -> DaemonEntry:
    """Resolve `module:function` to the daemon's foreground entry point.

    Raises:
        AutostartError: when the module or the function does not exist.
    """
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AutostartError(f"cannot import the daemon entry point {spec}: {exc}") from exc
    entry = getattr(module, attribute, None)
    if not callable(entry):
        raise AutostartError(f"the daemon entry point {spec} is missing or not callable")
    return cast(DaemonEntry, entry)


class ServiceLifecycle:
    """Run the daemon for the SCM: report START_PENDING, RUNNING, and STOP_PENDING on stop.

    `run()` blocks until the daemon returns. A daemon that returns without being asked to stop
    is an error, so the SCM sees a failure and applies the recovery actions.
    """

    def __init__(
        self,
        home: Path,
        report: StatusReporter,
        load_entry: Callable[[], DaemonEntry] = load_daemon_entry,
    ) -> None:
        self._home = home
        self._report = report
        self._load_entry = load_entry
        self.stop_event = threading.Event()

    def run(self) -> None:
        """Start the daemon and block until it has stopped.

        Raises:
            AutostartError: when the entry point cannot be loaded or the daemon exits unasked.
        """
        self._report("start_pending", START_WAIT_HINT_MS)
        entry = self._load_entry()
        paths = resolve_home(self._home)
        self._report("running", 0)
        entry(paths, self.stop_event)
        if not self.stop_event.is_set():
            raise AutostartError("the daemon stopped without being asked to")

    def stop(self) -> None:
        """Ask the daemon to stop; the SCM waits up to the stop wait hint for `run()` to return."""
        self._report("stop_pending", STOP_WAIT_HINT_MS)
        self.stop_event.set()


def service_name(paths: HomePaths, host: HostFacts) -> str:
    """The service of this home: `llama-orchestrator` for the default home, else with its hash
    (service names are machine-wide: two users' homes must not share one)."""
    return entry_name(SERVICE_NAME, paths.home, host, casefold=True)


def build_service_class(home: Path, name: str = SERVICE_NAME) -> type[Any]:
    """Build the `ServiceFramework` subclass for `home`, installed as `name` (Windows only: imports pywin32)."""
    import servicemanager
    import win32service
    import win32serviceutil

    states = {
        "start_pending": win32service.SERVICE_START_PENDING,
        "running": win32service.SERVICE_RUNNING,
        "stop_pending": win32service.SERVICE_STOP_PENDING,
    }

    class LlamaOrchestratorService(win32serviceutil.ServiceFramework):  # type: ignore[misc]
        _svc_name_ = name
        _svc_display_name_ = DISPLAY_NAME if name == SERVICE_NAME else name
        _svc_description_ = DESCRIPTION

        def __init__(self, args: list[str]) -> None:
            super().__init__(args)
            self.lifecycle = ServiceLifecycle(home, self._report)

        def _report(self, state: ServiceState, wait_hint_ms: int) -> None:
            self.ReportServiceStatus(states[state], waitHint=wait_hint_ms)

        def SvcRun(self) -> None:
            try:
                self.lifecycle.run()
            except BaseException as exc:
                # Raising makes the C framework report SERVICE_STOPPED with an error code, which
                # (with failureflag 1) triggers the recovery actions. The event log says why.
                servicemanager.LogErrorMsg(f"{name}: daemon failed: {exc!r}")
                raise
            self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING, waitHint=STOP_WAIT_HINT_MS)

        def SvcStop(self) -> None:
            self.lifecycle.stop()

        def SvcShutdown(self) -> None:
            self.lifecycle.stop()

    return LlamaOrchestratorService


def host_service(home: Path, name: str = SERVICE_NAME) -> None:
    """Connect to the SCM and run the service `name` until it is stopped (Windows only; blocks)."""
    import servicemanager

    service_class = build_service_class(home, name)
    servicemanager.Initialize()
    servicemanager.PrepareToHostSingle(service_class)
    servicemanager.StartServiceCtrlDispatcher()


def service_command_line(paths: HomePaths, host: HostFacts) -> str:
    """The service's `binPath`: base interpreter, host script, `--home`, `--site-packages`,
    `--service-name` unless it is the default home's, and `--env NAME=VALUE` for each forwarded
    variable of the installing environment.

    Raises:
        AutostartError: when the host script's location is unknown.
    """
    if host.service_host_script is None:
        raise AutostartError("cannot locate autostart/_service_host.py for the service's command line")
    argv = [str(host.base_python or host.python), str(host.service_host_script), "--home", str(paths.home)]
    if host.site_packages is not None:
        argv += ["--site-packages", str(host.site_packages)]
    if (service := service_name(paths, host)) != SERVICE_NAME:
        argv += ["--service-name", service]
    for name, value in host.environment:  # a service has no environment of its own either
        argv += ["--env", f"{name}={value}"]
    # sc.exe stores binPath verbatim and the SCM hands it to CreateProcess: Windows CRT quoting.
    return subprocess.list2cmdline(argv)


def plan_windows_service(paths: HomePaths, host: HostFacts) -> ServicePlan:
    """Plan the `sc.exe` calls that create, configure, start, stop and delete the service."""
    sc = "sc.exe"  # not `sc`: in PowerShell `sc` is an alias of Set-Content
    name = service_name(paths, host)
    # A display name is unique too; another home's service shows its own name and home.
    display, description = (DISPLAY_NAME, DESCRIPTION) if name == SERVICE_NAME else (
        name, f"{DESCRIPTION} Home: {paths.home}")
    return ServicePlan(
        backend="windows-service",
        name=name,
        install_commands=(
            # sc.exe wants `option=` and its value as two arguments.
            Command(
                (sc, "create", name, "binPath=", service_command_line(paths, host),
                 "start=", "delayed-auto", "DisplayName=", display)
            ),
            Command((sc, "description", name, description)),
            Command(
                (sc, "failure", name, "reset=", "86400",
                 "actions=", "restart/5000/restart/30000/restart/60000")
            ),
            # Apply the recovery actions also when the service stops with an error exit code.
            Command((sc, "failureflag", name, "1")),
            Command((sc, "start", name)),
        ),
        uninstall_commands=(
            Command((sc, "stop", name), check=False),
            Command((sc, "delete", name), check=False),
        ),
        status_commands=(
            Command((sc, "query", name), check=False),
            Command((sc, "qc", name), check=False),
        ),
        notes=(
            "Installing a service needs an elevated (administrator) prompt.",
            "The service runs as LocalSystem in session 0 (no desktop): CUDA works there; if a "
            "Vulkan driver does not, use the scheduled task with --mode logon instead.",
            f"The home is passed explicitly ({paths.home}); files the daemon creates there are "
            "owned by SYSTEM.",
            f"Start/stop: `sc.exe start {name}`, `sc.exe stop {name}`; "
            "failures are logged in the Application event log.",
        ),
    )
