"""`llama-orch up|down|start|stop|restart|ps|logs|inspect|events`: the Docker-like verbs.

Every command goes through the daemon's control API and starts the daemon (without autostart)
when none runs. Commands that change state wait until each instance is ready, failed or
stopped, printing each transition as the daemon streams it; `-d` returns at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import typer

from llama_orchestrator.cli import _console, _format
from llama_orchestrator.cli._context import context
from llama_orchestrator.config.paths import HomePaths
from llama_orchestrator.errors import InstanceFailedError

if TYPE_CHECKING:
    from rich.text import Text

    from llama_orchestrator.config.footprint import Footprint
    from llama_orchestrator.daemon.client import DaemonClient
    from llama_orchestrator.daemon.protocol import ActionResult, EventOut, InstanceStatus
    from llama_orchestrator.gguf_file import GgufFacts

WAIT_FOREVER_S = 7 * 24 * 3600.0
PROGRESS_DRAIN_S = 2.0  # longest wait for the last transitions to be printed after the result


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("down")(down)
    app.command("start")(start)
    app.command("stop")(stop)
    app.command("restart")(restart)
    app.command("ps")(ps)
    app.command("logs")(logs)
    app.command("inspect")(inspect)
    app.command("events")(events)


def _client(paths: HomePaths) -> DaemonClient:
    from llama_orchestrator.daemon.launcher import ensure_daemon

    return ensure_daemon(paths)


def _act(ctx: typer.Context, action: str, names: list[str], detach: bool, timeout_s: float | None) -> None:
    client = _client(context(ctx).paths)
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
    _report(action, result)


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


def _report(action: str, result: ActionResult) -> None:
    failed = [s for s in result.instances if s.state == "failed"]
    for status in result.instances:
        if status.state == "failed":
            continue
        where = f" on {status.host}:{status.port}" if status.state == "ready" else ""
        _console.success(f"{status.name}: {status.state}{where}")
    if not result.instances:
        _console.info(f"{action}: no instances to act on")
    if result.gateway:  # instances up behind a gateway that cannot serve them: say it here
        _console.gateway_warnings(result.gateway)
    if failed:
        for status in failed[1:]:
            _console.error(f"{status.name}: failed: {status.last_error}")
        first = failed[0]
        raise InstanceFailedError(first.name, first.last_error or first.reason, hint=f"llama-orch logs {first.name}")


DETACH = typer.Option(False, "--detach", "-d", help="Return at once instead of waiting.")
TIMEOUT = typer.Option(None, "--timeout", help="Give up waiting after this many seconds.")


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


def ps(
    ctx: typer.Context,
    all_: bool = typer.Option(False, "--all", "-a", help="Include stopped instances."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Keep the table live (Ctrl+C to quit)."),
) -> None:
    """List instances with state, pid, port, uptime, restarts, health and last error."""
    client = _client(context(ctx).paths)
    if watch:
        from llama_orchestrator.cli.watch import watch_table

        watch_table(client, show_all=all_)
        return
    info = client.status()
    rows = [s for s in info.instances if all_ or s.state != "stopped"]
    if as_json:
        _console.print_json({"gateway": info.gateway.address, "instances": [s.model_dump(mode="json") for s in rows]})
        return
    _console.out.print(f"gateway: {info.gateway.summary()}   daemon: pid {info.pid}")
    _console.out.print(instance_table(rows))
    if any(s.changed for s in rows):
        _console.out.print("[dim]* its config changed since it started: `llama-orch up` applies it (restarting "
                           "it only for a new command line; `inspect` says what changed)[/]")
    hidden = len(info.instances) - len(rows)
    if hidden:
        _console.out.print(f"[dim]{hidden} stopped instance(s) hidden; -a shows them[/]")


def instance_table(rows: list[InstanceStatus]) -> Text:
    """The `ps` table: one line per instance; short columns never shrink, only LAST ERROR is cut.
    MEM is the resident size; GPU (what each process holds there: daemon.gpu_memory) only when known."""
    gpu = any(s.gpu_bytes for s in rows)
    headers = ["NAME", "STATE", "PID", "PORT", "ALIAS", "UPTIME", "RESTARTS", "MEM", *(["GPU"] if gpu else []),
               "HEALTH", "LAST ERROR"]
    cells = [
        [s.name, s.state + ("*" if s.changed else ""), str(s.pid or "-"), str(s.port), s.alias,
         _format.duration(s.uptime_s), str(s.restarts), _format.size(s.rss_bytes),
         *([_format.size(s.gpu_bytes)] if gpu else []), s.health, " ".join((s.last_error or "").split())]
        for s in rows
    ]
    return _format.columns(headers, cells, width=_console.width(), styled=1)


def logs(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Instance name."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    lines: int = typer.Option(100, "--tail", "-n", min=0, help="Lines to show from the end."),
) -> None:
    """Print an instance's llama-server output (from its log file).

    Example: llama-orch logs gpt-oss -f -n 50
    """
    client = _client(context(ctx).paths)
    try:
        for line in client.logs(name, lines, follow=follow):
            print(line, flush=True)
    except KeyboardInterrupt:
        return


def inspect(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Instance name."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Show everything about one instance: effective config, model file, argv, runtime, last exit, last log lines."""
    from llama_orchestrator import gguf_file

    detail = _client(context(ctx).paths).inspect(name)
    s = detail.status
    facts = gguf_file.facts(s.model)
    size, _ = gguf_file.size_and_mtime(s.model)
    memory = _memory_estimate(detail.config, facts, size)
    keys = gguf_file.metadata_keys(s.model)
    if as_json:
        model_file = {"bytes": size, "architecture": facts.architecture, "name": facts.name,
                      "size_label": facts.size_label, "quantization": facts.quantization,
                      "trained_context": facts.context_length, "problem": gguf_file.problem(s.model),
                      "chat_template": None if keys is None else gguf_file.CHAT_TEMPLATE in keys}
        estimate = None if memory is None else {
            "pool": memory[0], "bytes": memory[1].total, "weights": memory[1].weights,
            "kv_cache": memory[1].kv_cache, "overhead": memory[1].overhead, "tokens": memory[1].tokens}
        _console.print_json({**detail.model_dump(mode="json"), "model_file": model_file, "memory_estimate": estimate})
        return
    out = _console.out
    out.print(f"[bold]{s.name}[/]  {_format.state(s.state)}  ({_console.escape(s.reason)})")
    for label, value in (
        ("pid", s.pid or "-"),
        ("address", f"http://{s.host}:{s.port}"),
        ("alias", s.alias),
        ("also", _further_names(detail.config) or "-"),
        ("backend", s.backend),
        ("model", s.model),
        ("gguf", f"{facts.describe()} · {_format.size(size)}" if facts.architecture else
                 gguf_file.problem(s.model) or "-"),
        ("memory", f"{memory[1].describe()} ({memory[0]}, estimated)" if memory and facts.architecture else "-"),
        ("chat", _chat_template(detail.config, keys, facts.architecture)),
        ("uptime", _format.duration(s.uptime_s)),
        ("restarts", s.restarts),
        ("health", s.health),
        ("last exit", s.last_exit or "-"),
        ("last error", s.last_error or "-"),
        ("changed", f"{s.changed} (`llama-orch up {s.name}` applies it)" if s.changed else "-"),
        ("log", detail.log_path),
    ):
        out.print(f"  {label:<11}{_console.escape(str(value))}")
    from llama_orchestrator.config.argv import quote_command

    out.print(f"  {'command':<11}{_console.escape(quote_command(detail.argv))}")
    for key, value in detail.env.items():
        out.print(f"  {'env':<11}{key}={value}")
    out.print("[bold]last log lines[/]")
    for line in detail.log_tail:
        out.print("  " + _console.escape(line))


def _chat_template(config: dict[str, Any], keys: list[str] | None, architecture: str) -> str:
    """Which chat template llama-server formats chats with, or what to do when it would be ChatML
    for want of one."""
    from llama_orchestrator.config.chat_templates import missing_template

    template, args = config.get("model", {}).get("chat_template"), config.get("args", [])
    if (note := missing_template(keys, architecture, template, args)) is not None:
        return note
    if template:
        return f"{template} (model.chat_template)"
    from llama_orchestrator.gguf_file import CHAT_TEMPLATE

    return "the model file's own" if keys is not None and CHAT_TEMPLATE in keys else "-"


def _memory_estimate(config: dict[str, object], facts: GgufFacts, size: int) -> tuple[str, Footprint] | None:
    """(pool, footprint) the gateway's memory budgets would count before the instance has run."""
    from pydantic import ValidationError

    from llama_orchestrator.config import footprint
    from llama_orchestrator.config.models import InstanceConfig

    try:
        parsed = InstanceConfig.model_validate(config)
    except ValidationError:
        return None
    return footprint.pool_of(parsed), footprint.estimate(parsed, facts, size)


def _further_names(config: dict[str, object]) -> str:
    """The other names the gateway routes to an instance: model.aliases, then its variants."""
    model, variants = config.get("model"), config.get("variants")
    names = [str(alias) for alias in (model.get("aliases") or [] if isinstance(model, dict) else [])]
    if isinstance(variants, dict):
        names += [f"{name} (variant)" for name in variants]
    return ", ".join(names)


def events(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="Only this instance."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new events."),
    limit: int = typer.Option(100, "--tail", "-n", min=0, help="How many past events to show."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Show state transitions (from, to, reason, time), oldest first.

    Example: llama-orch events gpt-oss -f
    """
    client = _client(context(ctx).paths)
    history = list(client.events(name, tail=limit)) if limit else []
    last = history[-1].id if history else -1
    try:
        for event in history:
            _print_event(event, as_json)
        if follow:
            for event in client.events(name, last, follow=True):
                _print_event(event, as_json)
    except KeyboardInterrupt:
        return


def _print_event(event: EventOut, as_json: bool) -> None:
    if as_json:
        print(event.model_dump_json(), flush=True)
        return
    print(
        f"{_format.timestamp(event.at)}  {event.instance:<16} {event.from_state or '-':>11} → {event.to_state:<11} "
        f"{event.reason}",
        flush=True,
    )
