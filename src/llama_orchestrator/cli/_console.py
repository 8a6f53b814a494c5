"""The one place the CLI writes to the terminal: results to stdout, problems to stderr.

Rich honours NO_COLOR and plain pipes by itself; states are always spelled out as words, so
nothing depends on colour. Emoji codes are off: paths and file contents in messages hold text
such as `:x:` (`root:x:0`), which must print as it is.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rich.console import Console

from llama_orchestrator.errors import ConfigProblem

if TYPE_CHECKING:
    from llama_orchestrator.daemon.protocol import GatewayInfo


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """Rich's own handling exits 1; the CLI's one handler ends a closed pipe with 0."""
        self.quiet = True
        raise BrokenPipeError


out = _Console(highlight=False, soft_wrap=True, emoji=False)
err = _Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def print_json(data: Any) -> None:
    """Machine-readable output for --json: plain JSON on stdout, no styling."""
    print(json.dumps(data, indent=2, default=str))


def error(message: str, hint: str | None = None) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}")
    if hint:
        err.print(f"[dim]hint:[/] {escape(hint)}")


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(message)}")


def info(message: str) -> None:
    err.print(escape(message))


def success(message: str) -> None:
    out.print(f"[green]✓[/] {escape(message)}")


def gateway_warnings(gateway: GatewayInfo) -> None:
    """Warn, where the user looks after `up` or `daemon start`, that the gateway in front of the
    instances cannot serve them as asked (only `daemon status` and daemon.log said it before)."""
    if gateway.error:
        warn(f"the gateway is not running: {gateway.error}")
    elif gateway.refusing:
        warn(f"the gateway refuses every request that needs a key: {gateway.refusing}")
    if gateway.settings_error:
        warn(gateway.settings_error)
    if gateway.restart_pending:
        warn(f"gateway.{', gateway.'.join(gateway.restart_pending)} changed in orchestrator.json: only "
             "a daemon restart applies it (llama-orch daemon stop --keep-instances; "
             f"llama-orch daemon start); the gateway still listens on {gateway.address}")


def problems(items: list[ConfigProblem]) -> None:
    for problem in items:
        label = "[bold red]error[/]" if problem.severity == "error" else "[yellow]warning[/]"
        err.print(f"{label} {escape(problem.render())}")


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def width() -> int | None:
    """How wide a table may be: the terminal's width; None (no limit) when stdout is a pipe or a
    file, where a cut line is information lost (`ps | grep`, `ls > fleet.txt`)."""
    return out.width if out.is_terminal else None
