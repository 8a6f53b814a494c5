"""`llama-orch`: the command-line interface (Typer). Commands are thin: parse, call one thing, render.

Exit codes (also in `llama-orch --help`): 0 ok, 1 error, 2 bad input or invalid config, 3 daemon
unreachable or already running, 4 no such instance, 5 conflict (exists, wrong state), 6 instance
failed to start, 7 home directory unusable, 8 autostart/service error, 9 --timeout ran out with an
instance still starting or stopping, 130 interrupted. A closed output pipe (`| head`) ends a command
quietly with 0.
"""

from __future__ import annotations

import importlib
import os
import sys
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
            result = super().invoke(ctx)
            sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
            return result
        except BrokenPipeError:
            # The reader went away (`ps --json | head`): that ends the command, not an error.
            # Stdout goes to devnull so the interpreter's final flush cannot fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None
        except OrchestratorError as exc:
            debug = isinstance(ctx.obj, CliContext) and ctx.obj.debug
            if debug:
                import traceback

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


def _print_version(value: bool) -> None:
    if value:
        print(f"llama-orch {__version__}")
        raise typer.Exit()


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


# Command name → the module that registers it (each has `register(app)`), in help order.
COMMAND_MODULES: dict[str, str] = {
    **dict.fromkeys(("create", "ls", "rm"), "instances"),
    "pull": "pull",
    "models": "models",
    **dict.fromkeys(("up", "down", "start", "stop", "restart", "ps", "logs", "inspect", "events"), "lifecycle"),
    **dict.fromkeys(("dashboard", "top"), "dashboard"),
    **dict.fromkeys(("config", "schema"), "config_cmd"),
    "daemon": "daemon_cmd",
    "service": "service",
}
_GLOBAL_OPTIONS_WITH_VALUE = {"--home"}
_GLOBAL_FLAGS = {"--debug"}


def build_app(command: str | None = None) -> typer.Typer:
    """The CLI with every command, or with only the module that serves `command`.

    A run imports only what its command needs (`ps` does not import the service renderers or
    the config tooling): start-up time is most of a short command's wall time.
    """
    app = typer.Typer(
        cls=OrchestratorGroup,
        name="llama-orch",
        help="Run and supervise llama.cpp llama-server instances, Docker-style.",
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(root)
    wanted = COMMAND_MODULES.get(command or "")
    for module in dict.fromkeys(COMMAND_MODULES.values()):
        if wanted is None or module == wanted:
            importlib.import_module(f"llama_orchestrator.cli.{module}").register(app)
    return app


def command_of(args: list[str]) -> str | None:
    """The subcommand `args` name, or None when the whole CLI is needed (help, completion, a
    typo that should list every command)."""
    rest = iter(args)
    for arg in rest:
        if arg in _GLOBAL_OPTIONS_WITH_VALUE:
            next(rest, None)
        elif arg.startswith("--home="):
            continue
        elif arg.startswith("-"):
            if arg not in _GLOBAL_FLAGS:
                return None  # --help, --version, completion options: the whole app
        else:
            return arg if arg in COMMAND_MODULES else None
    return None


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = sys.argv[1:] if argv is None else argv
    command = None if "_LLAMA_ORCH_COMPLETE" in os.environ else command_of(args)
    build_app(command)(args=args, prog_name="llama-orch")
