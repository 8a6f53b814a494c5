"""`llama-orch daemon run|start|stop|status`: the background process that owns the instances."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import typer

from llama_orchestrator.cli import _console
from llama_orchestrator.cli._context import context
from llama_orchestrator.cli._format import duration
from llama_orchestrator.errors import DaemonError, DaemonNotRunningError

if TYPE_CHECKING:
    from llama_orchestrator.config.paths import HomePaths
    from llama_orchestrator.daemon.client import DaemonClient
    from llama_orchestrator.daemon.protocol import GatewayInfo

daemon_app = typer.Typer(help="Run, start, stop and inspect the background daemon.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(daemon_app, name="daemon")
STOP_TIMEOUT_S = 120.0
GATEWAY_WAIT_S = 30.0  # for the gateway's start, which waits for the instances to be reconciled


@daemon_app.command("run")
def run(
    ctx: typer.Context,
    autostart: bool = typer.Option(True, "--autostart/--no-autostart", help="Start autostart instances."),
    stderr_log: bool = typer.Option(
        True,
        "--stderr-log/--no-stderr-log",
        help="Also write the log to stderr (a terminal, the journal). `daemon start` and the launchd "
        "agent turn it off: their stderr is a file that would copy logs/daemon.log without rotation.",
    ),
    env: list[str] = typer.Option(
        [],
        "--env",
        metavar="NAME=VALUE",
        help="Set a variable in the daemon's environment first (a Windows scheduled task has no "
        "environment of its own; `service install` puts LLAMA_ORCH_LLAMA_SERVER here).",
    ),
) -> None:
    """Run the daemon in the foreground (what systemd, launchd and Task Scheduler run).

    Instances the last daemon left running (it was killed, or stopped with --keep-instances) are
    adopted, or started again if their process is gone; with --autostart (the default) every
    instance marked autostart is started too, except those you stopped. The log goes to
    logs/daemon.log (rotated) and to stderr unless --no-stderr-log.
    """
    from llama_orchestrator.daemon.entry import run_daemon

    for assignment in env:
        name, sep, value = assignment.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{assignment!r} is not NAME=VALUE", param_hint="--env")
        os.environ[name] = value
    raise typer.Exit(run_daemon(context(ctx).paths, autostart=autostart, log_to_stderr=stderr_log))


@daemon_app.command("start")
def start(
    ctx: typer.Context,
    autostart: bool = typer.Option(True, "--autostart/--no-autostart", help="Start autostart instances."),
) -> None:
    """Start the daemon in the background (survives closing the terminal)."""
    from llama_orchestrator.daemon.client import DaemonClient
    from llama_orchestrator.daemon.launcher import start_detached

    paths = context(ctx).paths
    try:
        client = DaemonClient.connect(paths)
    except DaemonNotRunningError:
        client = start_detached(paths, autostart=autostart)
        _console.success(f"daemon started (pid {client.pid}, control API {client.address}, log {paths.daemon_log})")
        gateway = _gateway_once_tried(client, paths, GATEWAY_WAIT_S)
    else:
        _console.success(f"daemon already running (pid {client.pid}, control API {client.address})")
        gateway = client.status().gateway
    # the daemon runs whatever its gateway does (exit 0, as `up`), but a ✓ alone would hide it
    if gateway is None:
        _console.warn(f"the gateway has not started within {GATEWAY_WAIT_S:g} s; `llama-orch daemon status` "
                      "says when it listens, or why not")
    else:
        _console.gateway_warnings(gateway)


def _gateway_once_tried(client: DaemonClient, paths: HomePaths, timeout_s: float) -> GatewayInfo | None:
    """The new daemon's gateway once its start has been tried: the control API answers first, and
    the gateway starts once the instances are reconciled. None when not tried within `timeout_s`."""
    from llama_orchestrator.config.loader import load_fleet

    # a disabled gateway is never tried: orchestrator.json says so, read as the daemon has just read it
    enabled = load_fleet(paths, offline=True).orchestrator.gateway.enabled
    deadline = time.monotonic() + timeout_s
    while True:
        gateway = client.status().gateway
        if gateway.enabled or not enabled:
            return gateway
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)  # another process's start: nothing to wait on but time


@daemon_app.command("stop")
def stop(
    ctx: typer.Context,
    keep_instances: bool = typer.Option(
        False, "--keep-instances", help="Leave llama-servers running; the next daemon adopts them (POSIX)."
    ),
) -> None:
    """Stop the daemon; it stops every instance first unless --keep-instances."""
    from llama_orchestrator.daemon.client import DaemonClient

    paths = context(ctx).paths
    try:
        client = DaemonClient.connect(paths)
    except DaemonNotRunningError as exc:  # exit 3 still: a script that stops expects one to run
        raise DaemonNotRunningError(str(exc), hint="nothing to stop") from None
    pid = client.pid
    client.shutdown(keep_instances=keep_instances)
    if pid is not None and not _wait_exited(pid, STOP_TIMEOUT_S):
        raise DaemonError(f"daemon pid {pid} did not exit within {STOP_TIMEOUT_S:g} s")
    what = "instances left running" if keep_instances else "instances stopped"
    _console.success(f"daemon stopped ({what})")


def _wait_exited(pid: int, timeout_s: float) -> bool:
    """Wait until `pid` has exited. A zombie has: the detached daemon is not our child, and its
    new parent (init, or a container's PID 1 that may never reap) decides when it is reaped."""
    import psutil

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)  # another process's exit: nothing to wait on but time
    return False


@daemon_app.command("status")
def status(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Show whether the daemon runs, where, for how long, and the gateway and store health.

    Exit 3 when no daemon runs (with --json, after printing {"running": false, ...}).
    """
    from llama_orchestrator.daemon.client import DaemonClient

    paths = context(ctx).paths
    try:
        info = DaemonClient.connect(paths).status()
    except DaemonNotRunningError:
        if as_json:  # a script reads stdout: JSON either way, the exit code says it too
            _console.print_json({"running": False, "home": str(paths.home)})
        raise
    if as_json:
        _console.print_json({"running": True, **info.model_dump(mode="json")})
        return
    states: dict[str, int] = {}
    for inst in info.instances:
        states[inst.state] = states.get(inst.state, 0) + 1
    gateway = info.gateway.address or (f"error: {info.gateway.error}" if info.gateway.error else "disabled")
    if info.gateway.address and info.gateway.refusing:
        gateway += f", refusing every request that needs a key: its API keys could not be read: {info.gateway.refusing}"
    if info.gateway.address and info.gateway.settings_error:
        gateway += f"; {info.gateway.settings_error}"
    _console.out.print(f"daemon    running, pid {info.pid}, up {duration(info.uptime_s)}, version {info.version}")
    _console.out.print(f"home      {info.home}")
    _console.out.print(f"control   http://{info.control_address}")
    _console.out.print(f"gateway   {gateway}", markup=False)  # paths in messages are no markup
    _console.out.print(f"store     {info.store}")
    summary = ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "none"
    _console.out.print(f"instances {len(info.instances)} ({summary})")

