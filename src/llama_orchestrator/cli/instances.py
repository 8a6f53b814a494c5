"""`llama-orch create|ls|rm`: instance configs on disk (these work with no daemon)."""

from __future__ import annotations

import dataclasses
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from llama_orchestrator.cli import _console, _format, create_notes
from llama_orchestrator.cli._context import context
from llama_orchestrator.config.names import check_instance_name
from llama_orchestrator.config.paths import HomePaths
from llama_orchestrator.errors import (
    EXIT_CONFIG,
    ConfigError,
    ConfigProblem,
    InstanceExistsError,
    InstanceNotFoundError,
)

if TYPE_CHECKING:
    from llama_orchestrator.config.models import InstanceConfig
    from llama_orchestrator.config.orchestrator import OrchestratorConfig
    from llama_orchestrator.daemon.client import DaemonClient


def register(app: typer.Typer) -> None:
    app.command("create")(create)
    app.command("ls")(list_instances)
    app.command("rm")(remove)


def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Instance name: lowercase letters, digits, '.', '_', '-'."),
    extra: list[str] = typer.Argument(None, help="Extra llama-server arguments, after `--`."),
    model: Path | None = typer.Option(None, "--model", "-m", help="Path to the .gguf model file."),
    hf: str | None = typer.Option(
        None, "--hf", help="Instead of --model: owner/repo[:QUANT] on Hugging Face, fetched first (llama-orch pull)."
    ),
    port: int | None = typer.Option(None, "--port", "-p", help="Port for llama-server (default: first free, 8001+)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address llama-server binds."),
    backend: str = typer.Option("cpu", "--backend", "-b", help="cpu, vulkan, cuda, rocm or metal."),
    ctx_size: int | None = typer.Option(None, "--ctx", "-c", help="Context size (0 = the model's own)."),
    gpu_layers: int | None = typer.Option(None, "--gpu-layers", "-ngl", help="Layers to offload to the GPU."),
    alias: str | None = typer.Option(None, "--alias", "-a", help="Model name clients use (default: instance name)."),
    parallel: int | None = typer.Option(None, "--parallel", "-np", help="Parallel slots."),
    threads: int | None = typer.Option(
        None, "--threads", "-t", help="CPU threads for generation (default: one per core; CPU instances sharing "
        "the machine should split its cores)."
    ),
    embeddings: bool = typer.Option(
        False, "--embeddings", help="An embedding model: serve /v1/embeddings (model.embeddings). Its pooling, "
        "if not the model's own, goes after `--`: -- --pooling mean."
    ),
    chat_template: str | None = typer.Option(
        None, "--chat-template", help="For a model without its own template: a llama.cpp built-in name (gemma, "
        "llama3, chatml, ...; runs with --no-jinja, the only way llama-server applies a name) or Jinja text."
    ),
    on_demand: bool = typer.Option(False, "--on-demand", help="Start on the first gateway request, not at `up`."),
    preload: bool = typer.Option(
        False, "--preload", help="With --on-demand: also start it with `up` and the daemon, if max_loaded has room."
    ),
    idle_ttl: float | None = typer.Option(
        None, "--idle-ttl", help="With --on-demand: stop it after this many seconds without a request."
    ),
    no_check: bool = typer.Option(
        False, "--no-check", help="Do not require the model file to exist yet, nor check the arguments against "
        "llama-server's --help."
    ),
) -> None:
    """Create an instance config (refuses to overwrite one).

    Example: llama-orch create qwen --model D:/models/qwen.gguf --backend vulkan -ngl 99 -- --flash-attn on
    Example: llama-orch create gemma --hf ggml-org/gemma-3-270m-it-GGUF:Q8_0
    Example: llama-orch create embed --model D:/models/nomic-embed-text-v1.5.Q8_0.gguf --embeddings
    """
    from llama_orchestrator.config.files import write_json_atomic
    from llama_orchestrator.config.loader import load_fleet
    from llama_orchestrator.core.ports import choose_port
    from llama_orchestrator.engine.ports import is_port_free

    paths = context(ctx).paths
    name_problem = check_instance_name(name)
    if name_problem:
        raise ConfigError([ConfigProblem("<command line>", "NAME", name_problem)])
    target = paths.instance_config(name)
    if target.exists():
        raise InstanceExistsError(name, f"instance {name!r} already exists ({target})", hint=f"llama-orch rm {name}")
    if (model is None) == (hf is None):
        both = model is not None
        message = "give --model or --hf, not both" if both else "give the model as --model PATH or --hf REPO"
        raise ConfigError([ConfigProblem("<command line>", "--hf" if both else "--model", message)])
    if hf is not None:
        from llama_orchestrator.cli.pull import fetch

        model = Path(fetch(ctx, hf, option="--hf")[0])  # a split model: llama-server finds the other parts
    assert model is not None
    fleet = load_fleet(paths, offline=True)
    taken = _port_owners(fleet.instances, fleet.orchestrator)
    chosen = port  # a port create picks is free; one given may be held by a program no config names
    if port is None:
        port = choose_port(taken, lambda p: is_port_free(host, p))
        if port is None:
            raise ConfigError([ConfigProblem("<command line>", "--port", "no free port in 8001-8999; pass --port")])
    raw = _raw_config(name, model, port, host, backend, ctx_size, gpu_layers, alias, parallel, on_demand, extra or [])
    if preload:
        raw["preload"] = True
    if idle_ttl is not None:
        raw["idle_ttl_s"] = idle_ttl
    if chat_template is not None:
        raw["model"]["chat_template"] = chat_template
    if threads is not None:
        raw["model"]["threads"] = threads
    if embeddings:
        raw["model"]["embeddings"] = True
    problems = _check_new(raw, taken, port, None if no_check else fleet.orchestrator)
    if problems:
        raise ConfigError([_on_command_line(p, "--hf" if hf is not None else "--model") for p in problems])
    paths.ensure()
    _write_schema(paths)
    created_dir = not target.parent.exists()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_json_atomic(target, raw)
    except Exception:
        if created_dir:
            shutil.rmtree(target.parent, ignore_errors=True)
        raise
    _console.success(f"created {name}: port {port}, backend {backend}, config {target}")
    if (note := create_notes.template_note(raw)) is not None:
        _console.warn(note)
    unchecked = None if no_check else create_notes.unchecked_note(raw, fleet.orchestrator)
    if unchecked is not None:
        _console.warn(unchecked)
    # said above: the model file (checked, or --no-check), and no llama-server to ask
    said = frozenset({"model.path", *(("gpu.backend", "binary") if unchecked else ())})
    _console.problems(create_notes.new_warnings(paths, fleet, said))
    if chosen is not None and (busy := create_notes.port_note(host, port)) is not None:
        _console.warn(busy)


def _raw_config(
    name: str,
    model: Path,
    port: int,
    host: str,
    backend: str,
    ctx_size: int | None,
    gpu_layers: int | None,
    alias: str | None,
    parallel: int | None,
    on_demand: bool,
    extra: list[str],
) -> dict[str, Any]:
    from llama_orchestrator.config.schema import SCHEMA_REF

    model_section: dict[str, Any] = {"path": str(model.expanduser().absolute())}
    for key, value in (("alias", alias), ("context_size", ctx_size), ("parallel", parallel)):
        if value is not None:
            model_section[key] = value
    gpu: dict[str, Any] = {"backend": backend}
    if gpu_layers is not None:
        gpu["layers"] = gpu_layers
    raw: dict[str, Any] = {"$schema": SCHEMA_REF, "name": name, "model": model_section}
    raw["server"] = {"host": host, "port": port}
    raw["gpu"] = gpu
    raw["args"] = extra
    if on_demand:
        raw["on_demand"] = True
        raw["autostart"] = False
    return raw


def _port_owners(instances: Mapping[str, InstanceConfig], orchestrator: OrchestratorConfig) -> dict[int, str]:
    """Each port a new instance may not take -> what the clash message says holds it."""
    owners = {orchestrator.gateway.port: "is the gateway's (gateway.port in orchestrator.json)"}
    if orchestrator.control.port:  # 0: a free one, picked when the daemon starts
        owners[orchestrator.control.port] = "is the control API's (control.port in orchestrator.json)"
    owners.update({c.server.port: f"is already used by instance {name!r}" for name, c in sorted(instances.items())})
    return owners


# The config field each `create` option (or argument) sets; model.path comes from --model or --hf.
_OPTION_OF_FIELD = {
    "name": "NAME", "server.port": "--port", "server.host": "--host", "gpu.backend": "--backend",
    "gpu.layers": "--gpu-layers", "model.context_size": "--ctx", "model.alias": "--alias",
    "model.parallel": "--parallel", "model.threads": "--threads", "model.chat_template": "--chat-template",
    "model.embeddings": "--embeddings",
    "on_demand": "--on-demand", "preload": "--preload", "idle_ttl_s": "--idle-ttl", "args": "EXTRA",
}


def _on_command_line(problem: ConfigProblem, model_option: str) -> ConfigProblem:
    """Point a problem of the config `create` would have written at the option it came from: the
    file was never written. Whatever no option sets keeps its field, in the config not written."""
    field = problem.field.split(".")[0] if problem.field.startswith("args.") else problem.field
    option = model_option if field == "model.path" else _OPTION_OF_FIELD.get(field)
    if option is None:
        return dataclasses.replace(problem, file="<the config create would write>")
    return dataclasses.replace(problem, file="<command line>", field=option)


def _check_new(
    raw: dict[str, Any], taken: Mapping[int, str], port: int, check: OrchestratorConfig | None
) -> list[ConfigProblem]:
    """What is wrong with a new config; with `check`, also a missing model and arguments its
    llama-server (resolved as `check`, orchestrator.json, says) would refuse. The problems name
    the config's fields (`create` points them at its options)."""
    from pydantic import ValidationError

    from llama_orchestrator import gguf_file
    from llama_orchestrator.config.loader import argument_problems
    from llama_orchestrator.config.models import InstanceConfig
    from llama_orchestrator.config.problems import problems_from_validation
    from llama_orchestrator.engine.server_help import server_flags

    file = "<new config>"
    try:
        config = InstanceConfig.model_validate(raw)
    except ValidationError as exc:
        return problems_from_validation(exc, file, InstanceConfig)
    problems = []
    if port in taken:
        problems.append(ConfigProblem(
            file, "server.port", f"port {port} {taken[port]}; pick another, or leave out --port to get a free one"
        ))
    if check is None:
        return problems
    if (unloadable := gguf_file.problem(raw["model"]["path"])) is not None:
        problems.append(ConfigProblem(file, "model.path", f"{unloadable} (--no-check)"))
    problems += [dataclasses.replace(p, message=f"{p.message} (--no-check)")
                 for p in argument_problems(config, file, check, server_flags)]
    return problems


def _write_schema(paths: HomePaths) -> None:
    """Keep <home>/schemas/instance.schema.json current so the `$schema` reference in configs resolves."""
    import json

    from llama_orchestrator.config.files import write_json_atomic
    from llama_orchestrator.config.schema import SCHEMA_DIR, json_schema

    schema_dir = paths.home / SCHEMA_DIR
    schema_dir.mkdir(exist_ok=True)
    target = schema_dir / "instance.schema.json"
    text = json.dumps(json_schema("instance"), indent=2) + "\n"
    if not target.exists() or target.read_text(encoding="utf-8") != text:
        write_json_atomic(target, json.loads(text))


def list_instances(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """List configured instances (reads the config files; no daemon needed)."""
    from llama_orchestrator.config.loader import load_fleet

    fleet = load_fleet(context(ctx).paths, offline=True)
    rows = []
    for name in sorted(fleet.config_files):
        config = fleet.instances.get(name)
        if config is None:
            rows.append({"name": name, "valid": False})
            continue
        rows.append(
            {
                "name": name,
                "valid": True,
                "alias": config.served_name,
                "port": config.server.port,
                "backend": config.gpu.backend,
                "model": config.model.path,
                "start": _start_mode(config),
            }
        )
    if as_json:
        _console.print_json(rows)
        return
    cells = [[str(row[k]) for k in ("name", "alias", "port", "backend", "start", "model")] if row["valid"] else
             [str(row["name"]), "-", "-", "-", "-", "INVALID (llama-orch config validate)"] for row in rows]
    headers = ["NAME", "ALIAS", "PORT", "BACKEND", "START", "MODEL"]
    _console.out.print(_format.columns(headers, cells, width=_console.width(), keep_end=True))


def remove(
    ctx: typer.Context,
    names: list[str] = typer.Argument(..., help="Instances to remove."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Remove instances: their config directories and their log files.

    A running instance is stopped first, as by `down`: requests in flight finish.

    So is one the last daemon left running: a daemon is started to stop it.

    If any name is unknown, nothing is removed.

    Example: llama-orch rm qwen gemma -y
    """
    paths = context(ctx).paths
    names = list(dict.fromkeys(names))
    unknown = [n for n in names if check_instance_name(n) is not None or not paths.instance_config(n).exists()]
    if unknown:
        from llama_orchestrator.config.loader import load_fleet

        fleet = load_fleet(paths, offline=True)
        error = InstanceNotFoundError(unknown[0], known=sorted(fleet.config_files), also=unknown[1:])
        if len(names) > len(unknown):
            error.hint = f"nothing was removed; {error.hint}"
        raise error
    listed = ", ".join(repr(n) for n in names)
    if not yes:
        if not sys.stdin.isatty():
            _console.error(f"refusing to remove {listed} without confirmation", "pass -y to remove")
            raise typer.Exit(EXIT_CONFIG)
        what = f"instance {listed} and its logs" if len(names) == 1 else f"instances {listed} and their logs"
        typer.confirm(f"Remove {what}?", abort=True)
    from llama_orchestrator.cli import offline

    client = offline.daemon_to_stop(paths, names)
    for name in names:
        _before_remove(client, name)
        shutil.rmtree(paths.instance_dir(name))
        for log in paths.logs_dir.glob(f"{name}.log*"):
            log.unlink(missing_ok=True)
        _console.success(f"removed {name}")


def _before_remove(client: DaemonClient | None, name: str) -> None:
    """Stop the instance and forget its runtime state through the daemon, when one runs."""
    if client is None:
        return
    if any(s.name == name and s.pid is not None for s in client.instances()):
        _console.info(f"stopping {name} first (requests in flight finish, up to its stop_grace_s)")
    client.remove(name)


def _start_mode(config: InstanceConfig) -> str:
    """How `ls` says an instance starts."""
    if config.on_demand:
        return "on-demand, preload" if config.starts_with_up else "on-demand"
    return "autostart" if config.autostart else "manual"
