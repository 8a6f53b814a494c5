"""`llama-orch`: the command-line interface (Typer). Commands are thin: parse, call one thing, render.

Exit codes (also in `llama-orch --help`): 0 ok, 1 error, 2 bad input or invalid config, 3 daemon
unreachable or already running, 4 no such instance, 5 conflict (exists, wrong state), 6 instance
failed to start, 7 home directory unusable, 8 autostart/service error, 130 interrupted.
"""

from __future__ import annotations

import traceback
from typing import Any

import typer
from typer.core import TyperGroup

from llama_orchestrator import __version__
from llama_orchestrator.cli import _console
from llama_orchestrator.cli._context import CliContext
from llama_orchestrator.config.paths import resolve_home
from llama_orchestrator.errors import EXIT_INTERRUPTED, ConfigError, OrchestratorError


class OrchestratorGroup(TyperGroup):
    """Root group: the one place an OrchestratorError becomes a message and an exit code."""

    def invoke(self, ctx: Any) -> Any:  # typer vendors click in newer releases: stay neutral
        try:
            return super().invoke(ctx)
        except OrchestratorError as exc:
            debug = isinstance(ctx.obj, CliContext) and ctx.obj.debug
            if debug:
                traceback.print_exc()
            if isinstance(exc, ConfigError):
                _console.problems(exc.problems)
                _console.error(f"{len(exc.problems)} problem(s) in configuration", exc.hint)
            else:
                _console.error(str(exc), exc.hint)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            _console.error("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None


app = typer.Typer(
    cls=OrchestratorGroup,
    name="llama-orch",
    help="Run and supervise llama.cpp llama-server instances, Docker-style.",
    epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        print(f"llama-orch {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: str | None = typer.Option(
        None, "--home", help="Home directory (default: $LLAMA_ORCH_HOME, else the platform's user data dir)."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    ctx.obj = CliContext(paths=resolve_home(home), debug=debug)


def _register() -> None:
    from llama_orchestrator.cli import config_cmd, daemon_cmd, instances, lifecycle
    from llama_orchestrator.cli import dashboard as dashboard_cmd
    from llama_orchestrator.cli.service import service_app

    instances.register(app)
    lifecycle.register(app)
    dashboard_cmd.register(app)
    app.add_typer(config_cmd.config_app, name="config")
    app.add_typer(daemon_cmd.daemon_app, name="daemon")
    app.add_typer(service_app, name="service")
    app.command("schema")(config_cmd.schema)


_register()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    app(args=argv, prog_name="llama-orch")
