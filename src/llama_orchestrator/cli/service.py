"""`llama-orch service install|uninstall|status`: start the daemon at boot or logon.

Thin: each command builds a `ServicePlan` with `autostart.build_plan()` and either prints it
(`--dry-run`), carries it out (`autostart.apply`/`remove`) or asks for its status. Entries are
named after their home (`autostart.spec.entry_name`); status, install and uninstall also find a
home's entry under the plain name it had before (`autostart.locate`), and never replace or
remove one that runs another home's daemon. Errors are `AutostartError`s; the main CLI turns them
into exit code 8.

Collaborators come from `ServiceDeps`: the main app may put one on its context object as
`service_deps` (tests do, to fake the service manager and the host); otherwise the real
subprocess runner, the running host and the running platform are used.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from llama_orchestrator._platform import PLATFORM, PlatformName
from llama_orchestrator.autostart import (
    CommandRunner,
    HostFacts,
    Mode,
    ServicePlan,
    ServiceStatus,
    SubprocessCommandRunner,
    apply,
    build_plan,
    current_host,
    home_stop_timeout_s,
    locate,
    refuse_other_home,
    remove,
)
from llama_orchestrator.config.paths import HomePaths, resolve_home

service_app = typer.Typer(
    help="Start the daemon at boot or logon: systemd unit, launchd agent, Windows task or service.",
    no_args_is_help=True,
)

console = Console(emoji=False)  # unit names and paths print as they are, `:x:` included


def register(app: typer.Typer) -> None:
    app.add_typer(service_app, name="service")


@dataclass(frozen=True)
class ServiceDeps:
    """What the service commands act on; the defaults are the real machine."""

    runner: CommandRunner
    host: HostFacts
    platform: PlatformName = PLATFORM
    unit_dir: Path | None = None


def _home(ctx: typer.Context) -> HomePaths:
    paths = getattr(ctx.find_root().obj, "paths", None)
    return paths if isinstance(paths, HomePaths) else resolve_home(None)


def _deps(ctx: typer.Context) -> ServiceDeps:
    deps = getattr(ctx.find_root().obj, "service_deps", None)
    if isinstance(deps, ServiceDeps):
        return deps
    return ServiceDeps(runner=SubprocessCommandRunner(), host=current_host())


def _plans(
    ctx: typer.Context, mode: Mode, system: bool, windows_service: bool
) -> tuple[ServicePlan, ServicePlan | None, ServiceDeps]:
    """This home's plan, and the plan under the plain name when this home's name carries its hash
    (where an install from before names depended on the home is), else None."""
    deps, paths = _deps(ctx), _home(ctx)
    stop_timeout_s = home_stop_timeout_s(paths)

    def plan(host: HostFacts) -> ServicePlan:
        return build_plan(deps.platform, mode, system, paths, deps.host.python, host=host,
                          windows_service=windows_service, unit_dir=deps.unit_dir, stop_timeout_s=stop_timeout_s)

    current = plan(deps.host)
    plain = plan(dataclasses.replace(deps.host, default_home=paths.home))  # the default home's names
    return current, (None if plain.name == current.name else plain), deps


class ServiceMode(StrEnum):
    LOGON = "logon"
    BOOT = "boot"


ModeOption = Annotated[
    ServiceMode,
    typer.Option(
        "--mode",
        help="logon: start when you log on (desktop GPUs, Vulkan). boot: start at boot, no logon needed.",
    ),
]
SystemOption = Annotated[
    bool, typer.Option("--system", help="Linux: a system unit (needs root) instead of a user unit.")
]
WindowsServiceOption = Annotated[
    bool, typer.Option("--windows-service", help="Windows: a real service (needs admin) instead of a scheduled task.")
]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Print every file and command; change nothing.")]


def _print_plan(plan: ServicePlan, *, files: bool, commands: tuple[str, ...]) -> None:
    if files:
        for file in plan.files:
            header = Text.assemble((f"# file {file.path}", "bold"), f" (mode {file.mode:04o}, {file.encoding})")
            console.print(header, highlight=False, soft_wrap=True)
            console.print(file.content, markup=False, highlight=False, soft_wrap=True)
    for label in commands:
        for command in getattr(plan, label):
            suffix = "" if command.check else "   # failure ignored"
            console.print(f"$ {command.display()}{suffix}", markup=False, highlight=False, soft_wrap=True)


def _print_notes(plan: ServicePlan) -> None:
    for note in plan.notes:
        console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)


@service_app.command()
def install(
    ctx: typer.Context,
    mode: ModeOption = ServiceMode.LOGON,
    system: SystemOption = False,
    windows_service: WindowsServiceOption = False,
    dry_run: DryRunOption = False,
) -> None:
    """Install and start the autostart entry for this home's daemon.

    Example: llama-orch service install --mode logon --dry-run
    """
    plan, plain, deps = _plans(ctx, "boot" if mode is ServiceMode.BOOT else "logon", system, windows_service)
    if dry_run:
        _print_plan(plan, files=True, commands=("install_commands",))
        _warn_daemon_outside(_home(ctx), None)
    else:
        # launchd does not create the log directory named in the plist; the daemon needs it anyway.
        home = _home(ctx).ensure().home
        found, status = locate(plan, plain, deps.runner, home)
        refuse_other_home(status, home, "installing")
        _warn_daemon_outside(_home(ctx), status)
        if found is not plan:  # this home's entry under the plain name: renamed, not doubled
            remove(found, deps.runner)
            console.print(f"removed {found.backend} {found.name} (named before names depended on the home)")
        apply(plan, deps.runner)
        console.print(f"[green]installed[/] {plan.backend} {plan.name}")
    _print_notes(plan)


def _warn_daemon_outside(paths: HomePaths, status: ServiceStatus | None) -> None:
    """A daemon `daemon start` started holds the home: the service's `daemon run` would exit 3
    (already running) and its manager would retry it, so say how to hand the instances over.
    `status` None (--dry-run asks the manager nothing): whoever started it is not known."""
    from llama_orchestrator.daemon.client import DaemonClient
    from llama_orchestrator.errors import OrchestratorError

    if status is not None and status.installed and status.active:
        return  # the service's own daemon
    try:
        pid = DaemonClient.connect(paths).pid
    except OrchestratorError:  # none runs (or none that answers): nothing to hand over
        return
    who = "" if status is not None else " (unless the service manager started it)"
    console.print(
        f"warning: a daemon (pid {pid or '?'}) already runs for {paths.home} outside the service manager{who}: "
        "the service's `llama-orch daemon run` would exit 3 (already running) and be retried. Hand over: "
        "`llama-orch daemon stop --keep-instances`, then start the service (`llama-orch service install` "
        "starts it); its daemon adopts the running instances.",
        markup=False, highlight=False, soft_wrap=True,
    )


@service_app.command()
def uninstall(
    ctx: typer.Context,
    system: SystemOption = False,
    windows_service: WindowsServiceOption = False,
    dry_run: DryRunOption = False,
) -> None:
    """Stop and remove the autostart entry (safe when nothing is installed).

    Example: llama-orch service uninstall --dry-run
    """
    plan, plain, deps = _plans(ctx, "logon", system, windows_service)
    if dry_run:
        for file in plan.files:
            console.print(f"# remove {file.path}", markup=False, highlight=False, soft_wrap=True)
        _print_plan(plan, files=False, commands=("uninstall_commands", "post_uninstall_commands"))
        return
    home = _home(ctx).home
    found, status = locate(plan, plain, deps.runner, home)
    refuse_other_home(status, home, "uninstalling")
    remove(found, deps.runner)
    console.print(f"[green]uninstalled[/] {found.backend} {found.name}")


@service_app.command()
def status(
    ctx: typer.Context,
    system: SystemOption = False,
    windows_service: WindowsServiceOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Show whether the autostart entry is installed, enabled and running.

    Example: llama-orch service status --json
    """
    plan, plain, deps = _plans(ctx, "logon", system, windows_service)
    home = _home(ctx).home
    found, result = locate(plan, plain, deps.runner, home)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    _print_status(result)
    if result.runs(home) is False:
        console.print(f"  it runs the daemon of another home, not this one ({home}): this home's is not installed",
                      markup=False, highlight=False)
    elif found is not plan:
        console.print(f"  named before names depended on the home: `llama-orch service install` renames it "
                      f"{plan.name}", markup=False, highlight=False)


def _print_status(result: ServiceStatus) -> None:
    def word(value: bool | None, yes: str, no: str) -> str:
        return "unknown" if value is None else (yes if value else no)

    console.print(f"{result.backend} {result.name}: {'installed' if result.installed else 'not installed'}")
    if result.installed:
        console.print(f"  enabled: {word(result.enabled, 'yes', 'no')}")
        console.print(f"  active:  {word(result.active, 'yes', 'no')} ({result.state or 'no state reported'})")
        console.print(f"  home:    {result.home or 'unknown'}", markup=False, highlight=False)
    for path, exists in result.files.items():
        console.print(f"  file: {path} ({'present' if exists else 'missing'})", markup=False, highlight=False)
