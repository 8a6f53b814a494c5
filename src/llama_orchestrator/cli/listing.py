"""`llama-orch ps|logs|inspect|events`: the commands that only look.

They read through the daemon's control API when a daemon runs, and never start one: with none
running they say so and show what the home holds (`cli.offline`), as `docker ps` never starts
dockerd. Only the commands that act (`up`, `start`, `restart`, ...) start a daemon.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from llama_orchestrator.cli import _console, _format, offline
from llama_orchestrator.cli._context import context

INVALID = "config invalid"

if TYPE_CHECKING:
    from rich.text import Text

    from llama_orchestrator.config.footprint import Footprint
    from llama_orchestrator.daemon.protocol import EventOut, InstanceStatus
    from llama_orchestrator.gguf_file import GgufFacts


def register(app: typer.Typer) -> None:
    app.command("ps")(ps)
    app.command("logs")(logs)
    app.command("inspect")(inspect)
    app.command("events")(events)


def ps(
    ctx: typer.Context,
    all_: bool = typer.Option(False, "--all", "-a", help="Include stopped instances."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Keep the table live (Ctrl+C to quit)."),
) -> None:
    """List instances with state, pid, port, uptime, restarts, health and last error.

    Starts no daemon: with none running, shows the state the last one recorded.
    """
    paths = context(ctx).paths
    client = offline.connect(paths)
    if watch:
        from llama_orchestrator.cli.watch import watch_table

        if client is None:
            raise offline.not_running(paths, "nothing to watch")
        watch_table(client, show_all=all_)
        return
    info = client.status() if client is not None else None
    instances = offline.statuses(paths) if info is None else [  # with the configs the daemon never loaded
        *info.instances, *offline.statuses(paths, skip=frozenset(s.name for s in info.instances), only_invalid=True)]
    instances.sort(key=lambda s: s.name)
    rows = [s for s in instances if all_ or s.state != "stopped"]
    if as_json:
        _console.print_json({"daemon": info.pid if info else None, "gateway": info.gateway.address if info else None,
                             "instances": [s.model_dump(mode="json") for s in rows]})
        return
    if info is not None:
        _console.out.print(f"gateway: {info.gateway.summary()}   daemon: pid {info.pid}")
    else:
        _console.out.print("gateway: not running   daemon: not running")
    _console.out.print(instance_table(rows))
    if info is None and (left := sum(1 for s in instances if s.pid is not None)):
        _console.out.print(f"[dim]{left} instance(s) left running by the last daemon, unsupervised: "
                           "`llama-orch daemon start` adopts them[/]")
    if any(s.changed and s.changed.startswith(INVALID) for s in rows):
        _console.out.print(f"[dim]* {INVALID}: `llama-orch config validate` says why (a running daemon keeps "
                           "the last valid one)[/]")
    if any(s.changed and not s.changed.startswith(INVALID) for s in rows):
        _console.out.print("[dim]* its config changed since it started: `llama-orch up` applies it (restarting "
                           "it only for a new command line; `inspect` says what changed)[/]")
    hidden = len(instances) - len(rows)
    if hidden:
        _console.out.print(f"[dim]{hidden} stopped instance(s) hidden; -a shows them[/]")


def instance_table(rows: list[InstanceStatus]) -> Text:
    """The `ps` table: one line per instance; short columns never shrink, only LAST ERROR is cut.
    MEM is the resident size; GPU (what each process holds there: daemon.gpu_memory) only when known."""
    gpu = any(s.gpu_bytes for s in rows)
    headers = ["NAME", "STATE", "PID", "PORT", "ALIAS", "UPTIME", "RESTARTS", "MEM", *(["GPU"] if gpu else []),
               "HEALTH", "LAST ERROR"]
    cells = [
        [s.name, s.state + ("*" if s.changed else ""), str(s.pid or "-"), str(s.port or "-"), s.alias,
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
    paths = context(ctx).paths
    client = offline.connect(paths, name)
    found = client.logs(name, lines, follow=follow) if client else offline.log_lines(paths, name, lines, follow=follow)
    try:
        for line in found:
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

    paths = context(ctx).paths
    client = offline.connect(paths, name)
    detail = client.inspect(name) if client is not None else offline.detail(paths, name)
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
        ("changed", s.changed if s.changed and s.changed.startswith(INVALID) else
                    f"{s.changed} (`llama-orch up {s.name}` applies it)" if s.changed else "-"),
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
    paths = context(ctx).paths
    client = offline.connect(paths, name)
    if client is None:
        history = offline.events(paths, name, limit)
    else:
        history = list(client.events(name, tail=limit)) if limit else []
    if name is not None and not history and not offline.has_config(paths, name):  # `events nope`: say so
        recorded = offline.events(paths, name, 1) if client is None else list(client.events(name, tail=1))
        if not recorded:  # not even the history of an instance removed since
            raise offline.not_found(paths, name)
    last = history[-1].id if history else -1
    try:
        for event in history:
            _print_event(event, as_json)
        if follow and client is None:
            raise offline.not_running(paths, "no new events to follow")
        if follow and client is not None:
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
