"""`llama-orch dashboard` (alias `llama-orch top`): open the live Textual dashboard.

Textual is an optional extra: it is imported only here, only when the command runs, and its
absence is reported with the install command instead of a traceback. The dashboard does not
start the daemon by itself; when none runs it says so and offers to start one (without
autostarting instances, like every other command that starts it).
"""

from __future__ import annotations

import typer

from llama_orchestrator.cli import _console
from llama_orchestrator.cli._context import context
from llama_orchestrator.config.paths import HomePaths
from llama_orchestrator.daemon.client import DaemonClient

INSTALL_HINT = "pip install 'llama-orchestrator[tui]'"


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)
    app.command("top", help="Alias of `dashboard`.")(dashboard)


def dashboard(ctx: typer.Context) -> None:
    """Watch and steer the fleet in a live terminal dashboard (keys: s x r l / ? q).

    Example: llama-orch top
    """
    try:
        from llama_orchestrator.tui.app import DashboardApp
    except ImportError as exc:
        if (exc.name or "").split(".")[0] != "textual":
            raise
        _console.error("the dashboard needs Textual, which is not installed", f"install it with: {INSTALL_HINT}")
        raise typer.Exit(1) from None
    paths = context(ctx).paths
    DashboardApp(lambda: _connect(paths), start_daemon=lambda: _start(paths)).run()


def _connect(paths: HomePaths) -> DaemonClient:
    return DaemonClient.connect(paths)


def _start(paths: HomePaths) -> object:
    from llama_orchestrator.daemon.launcher import start_detached

    return start_detached(paths, autostart=False)
