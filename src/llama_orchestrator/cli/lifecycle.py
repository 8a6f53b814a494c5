"""`llama-orch up|down|start|stop|restart`: the Docker-like verbs that act (`ps`, `logs`,
`inspect` and `events`, registered here too, are in `cli.listing`).

Every command goes through the daemon's control API and starts the daemon (without autostart)
when none runs, but for `down` and `stop` with nothing running. Commands that change state wait
until each instance is ready, failed or stopped, printing each transition as the daemon streams
it; `-d` returns at once.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import typer

from llama_orchestrator.cli import _console, listing
from llama_orchestrator.cli._context import context
from llama_orchestrator.config.paths import HomePaths
from llama_orchestrator.core.states import SETTLED_STATES
from llama_orchestrator.errors import InstanceFailedError, WaitTimeoutError

if TYPE_CHECKING:
    from llama_orchestrator.daemon.client import DaemonClient
    from llama_orchestrator.daemon.protocol import ActionResult, EventOut, InstanceStatus

WAIT_FOREVER_S = 7 * 24 * 3600.0
PROGRESS_DRAIN_S = 2.0  # longest wait for the last transitions to be printed after the result


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("down")(down)
    app.command("start")(start)
    app.command("stop")(stop)
    app.command("restart")(restart)
    listing.register(app)


def _client(paths: HomePaths, action: str, names: list[str]) -> DaemonClient | None:
    """The running daemon's client, else one started (without autostart); for `down` or `stop`
    only to stop what the last daemon left running (`offline.started_to_stop`). None when nothing
    they name runs: each is said stopped, and no daemon is started to do nothing."""
    from llama_orchestrator.cli import offline
    from llama_orchestrator.config.loader import instance_names
    from llama_orchestrator.daemon.client import DaemonClient
    from llama_orchestrator.daemon.launcher import ensure_daemon
    from llama_orchestrator.errors import DaemonNotRunningError

    if action not in ("down", "stop"):
        return ensure_daemon(paths)
    try:
        return DaemonClient.connect(paths)
    except DaemonNotRunningError:
        pass
    for name in names:  # (a running daemon names an unknown instance itself)
        if not offline.has_config(paths, name):
            raise offline.not_found(paths, name)
    targets = names or instance_names(paths)
    client = offline.started_to_stop(paths, targets)
    if client is None:
        for name in targets:
            _console.success(f"{name}: stopped")
        _console.info("nothing was running (no daemon runs; none was started)")
    return client


def _act(ctx: typer.Context, action: str, names: list[str], detach: bool, timeout_s: float | None) -> None:
    client = _client(context(ctx).paths, action, names)
    if client is None:
        return
    if detach:
        result = client.act(action, names)
        _console.success(f"{action}: queued for {', '.join(s.name for s in result.instances) or 'no instance'}")
        return
    stream = client.events(after_id=-1, follow=True)  # opened before acting: no transition is missed
    progress = _Progress(stream, names)
    watcher = threading.Thread(target=progress.run, daemon=True)
    watcher.start()
    try:
        result = client.act(action, names, wait_s=timeout_s or WAIT_FOREVER_S)
        if result.last_event_id > result.since_event_id:  # let the last transitions be printed
            progress.wait_seen(result.last_event_id, PROGRESS_DRAIN_S)
    finally:
        progress.stop()
        stream.close()
    for status in result.instances:
        if status.state == "failed":
            _console.error(f"{status.name} failed; last lines of {status.name}'s log:")
            for line in client.inspect(status.name).log_tail[-10:]:
                _console.info(f"  {line}")
    _report(action, result, timeout_s)


class _Progress:
    """Prints each transition of the instances concerned while a command runs (streamed, not
    polled), and lets the command wait until the transitions its result covers are printed: a
    fast start is ready before its events reach the stream."""

    def __init__(self, stream: Iterator[EventOut], names: list[str]) -> None:
        self.stream = stream
        self.names = names
        self._seen = 0
        self._stopped = False
        self._changed = threading.Condition()

    def run(self) -> None:
        try:
            for event in self.stream:
                if self._stopped:
                    return
                if not self.names or event.instance in self.names:
                    _console.info(f"{event.instance}: {event.from_state or '-'} → {event.to_state}  {event.reason}")
                with self._changed:
                    self._seen = event.id
                    self._changed.notify_all()
        except OSError:
            return

    def wait_seen(self, event_id: int, timeout_s: float) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._seen >= event_id, timeout_s)

    def stop(self) -> None:
        self._stopped = True


def _report(action: str, result: ActionResult, timeout_s: float | None) -> None:
    """One line per instance; a failure exits 6, and an instance still on its way when the wait
    ran out exits 9 (EXIT_TIMEOUT), as `docker compose up --wait --wait-timeout` does: neither is a ✓."""
    failed = [s for s in result.instances if s.state == "failed"]
    pending = [s for s in result.instances if s.state not in SETTLED_STATES]
    for status in result.instances:
        if status.state == "failed" or status.state not in SETTLED_STATES:
            continue
        where = f" on {status.host}:{status.port}" if status.state == "ready" else ""
        _console.success(f"{status.name}: {status.state}{where}")
    if not result.instances:
        _console.info(f"{action}: no instances to act on")
    if result.gateway:  # instances up behind a gateway that cannot serve them: say it here
        _console.gateway_warnings(result.gateway)
    timed_out = _timed_out(pending, timeout_s) if pending else None
    if timed_out and not failed:
        raise timed_out
    if timed_out:
        _console.error(str(timed_out), timed_out.hint)
    if failed:
        for status in failed[1:]:
            _console.error(f"{status.name}: failed: {status.last_error}")
        first = failed[0]
        raise InstanceFailedError(first.name, first.last_error or first.reason, hint=f"llama-orch logs {first.name}")


def _timed_out(pending: list[InstanceStatus], timeout_s: float | None) -> WaitTimeoutError:
    """What to say of instances still starting or stopping when the wait ended: the daemon goes on."""
    waited = f"after --timeout {timeout_s:g} s" if timeout_s else "when the wait ended"
    if len(pending) == 1:
        message = f"{pending[0].name} is still {pending[0].state} {waited}; the daemon carries on with it"
    else:
        still = ", ".join(f"{s.name} ({s.state})" for s in pending)
        message = f"still under way {waited}: {still}; the daemon carries on with them"
    hint = f"`llama-orch ps` shows where it stands; `llama-orch logs {pending[0].name} -f` follows its output"
    return WaitTimeoutError([s.name for s in pending], message, hint=hint)


def _positive(value: float | None) -> float | None:
    """0 (and inf) would mean no limit, and a negative one none at all, where the user asked for one."""
    if value is not None and not 0 < value < math.inf:
        raise typer.BadParameter(f"{value:g} is not a positive, finite number of seconds; leave --timeout out "
                                 "to wait without limit, or use -d not to wait")
    return value


DETACH = typer.Option(False, "--detach", "-d", help="Return at once instead of waiting.")
TIMEOUT = typer.Option(
    None, "--timeout", callback=_positive,
    help="Give up waiting after this many seconds (exit 9 if an instance is still on its way).",
)


def up(
    ctx: typer.Context,
    names: list[str] = typer.Argument(None, help="Instances (default: every autostart instance)."),
    detach: bool = DETACH,
    timeout: float | None = TIMEOUT,
) -> None:
    """Start instances (default: every autostart one) and wait until each is ready or failed.

    Example: llama-orch up gpt-oss qwen
    """
    _act(ctx, "up", names or [], detach, timeout)


def down(
    ctx: typer.Context,
    names: list[str] = typer.Argument(None, help="Instances (default: all)."),
    detach: bool = DETACH,
    timeout: float | None = TIMEOUT,
) -> None:
    """Stop instances (default: all) and wait until they are stopped."""
    _act(ctx, "down", names or [], detach, timeout)


def start(
    ctx: typer.Context,
    names: list[str] = typer.Argument(..., help="Instances to start."),
    detach: bool = DETACH,
    timeout: float | None = TIMEOUT,
) -> None:
    """Start the named instances and wait until each is ready or failed."""
    _act(ctx, "start", names, detach, timeout)


def stop(
    ctx: typer.Context,
    names: list[str] = typer.Argument(..., help="Instances to stop."),
    detach: bool = DETACH,
    timeout: float | None = TIMEOUT,
) -> None:
    """Stop the named instances (graceful, then killed after the grace period)."""
    _act(ctx, "stop", names, detach, timeout)


def restart(
    ctx: typer.Context,
    names: list[str] = typer.Argument(..., help="Instances to restart."),
    detach: bool = DETACH,
    timeout: float | None = TIMEOUT,
) -> None:
    """Stop and start the named instances (picks up config changes)."""
    _act(ctx, "restart", names, detach, timeout)

