"""`llama-orch config validate|render|show` and `llama-orch schema`: configs without a daemon."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Literal

import typer

from llama_orchestrator.cli import _console
from llama_orchestrator.cli._context import context
from llama_orchestrator.errors import EXIT_CONFIG, ConfigProblem, InstanceNotFoundError

if TYPE_CHECKING:
    from llama_orchestrator.config.models import InstanceConfig
    from llama_orchestrator.config.orchestrator import OrchestratorConfig

# The config models are imported inside the commands: building them costs ~0.2 s, which every
# other command (`ps` above all) should not pay at start-up.

config_app = typer.Typer(help="Check, render and show instance configs.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
    app.command("schema")(schema)


@config_app.command("validate")
def validate(
    ctx: typer.Context,
    names: list[str] = typer.Argument(None, help="Instances to check (default: all)."),
    offline: bool = typer.Option(
        False, "--offline", help="Missing or unloadable model files and missing binaries are warnings, "
        "and command lines are not checked against the binary's --help."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the problems as JSON."),
) -> None:
    """Check every config file and list every problem with its file, field and rule.

    Example: llama-orch config validate --offline
    """
    from llama_orchestrator.config.loader import load_fleet
    from llama_orchestrator.engine.server_help import server_flags

    paths = context(ctx).paths
    fleet = load_fleet(paths, offline=offline, flags_of=server_flags)
    unknown = [n for n in names or [] if n not in fleet.config_files]
    if unknown:
        raise InstanceNotFoundError(unknown[0], known=sorted(fleet.config_files))
    wanted = {str(fleet.config_files[n]) for n in names} if names else None
    instance_files = {str(p) for p in fleet.config_files.values()}
    read = fleet.orchestrator_read  # its valid part: a bad gateway.port must not hide an unreadable keys file
    keys = gateway_key_problems(read.config, str(paths.orchestrator_file)) if read.known("gateway.enabled") else []
    problems = [*fleet.problems, *keys]
    found = [p for p in problems if wanted is None or p.file in wanted or p.file not in instance_files]
    errors = [p for p in found if p.severity == "error"]
    if as_json:
        _console.print_json([problem_json(p) for p in found])
    else:
        _console.problems(found)
    if errors:
        if not as_json:
            _console.error(f"{len(errors)} problem(s) in configuration")
        raise typer.Exit(EXIT_CONFIG)
    if not as_json:
        checked = len(names) if names else len(fleet.config_files)
        _console.success(f"{checked} instance config(s) valid" + (f", {len(found)} warning(s)" if found else ""))


def gateway_key_problems(orchestrator: OrchestratorConfig, file: str) -> list[ConfigProblem]:
    """Key sources the gateway could not read, so that it would refuse every request that needs a
    key: a keys file (an error), a keys variable unset here (a warning: the daemon reads the
    environment it started in, which may hold it). Checked by `validate` only: the daemon keeps
    loading such a config, and fails closed (gateway.auth)."""
    from llama_orchestrator.gateway.auth import load_keyring
    from llama_orchestrator.gateway.errors import KeysUnreadable

    gateway = orchestrator.gateway
    if not gateway.enabled:
        return []
    problems = []
    if gateway.api_keys_env:
        try:
            load_keyring(gateway.api_keys_env, None)
        except KeysUnreadable as exc:
            problems.append(ConfigProblem(
                file, "gateway.api_keys_env",
                f"{exc} here; if the daemon's environment lacks it too, its gateway refuses every request "
                f"that needs a key; {exc.hint}", severity="warning",
            ))
    if gateway.api_keys_file:
        try:
            load_keyring(None, gateway.api_keys_file)
        except KeysUnreadable as exc:
            problems.append(ConfigProblem(
                file, "gateway.api_keys_file",
                f"{exc}: the gateway refuses every request that needs a key until it can read them (a running "
                f"one keeps the keys it read before); {exc.hint}",
            ))
    return problems


def problem_json(problem: ConfigProblem) -> dict[str, object]:
    return {
        "file": problem.file,
        "field": problem.field,
        "message": problem.message,
        "severity": problem.severity,
        "line": problem.line,
        "column": problem.column,
    }


def _instance(ctx: typer.Context, name: str) -> tuple[InstanceConfig, OrchestratorConfig]:
    from llama_orchestrator.config.loader import load_fleet, require_valid

    fleet = load_fleet(context(ctx).paths, offline=True)
    if name not in fleet.config_files:
        raise InstanceNotFoundError(name, known=sorted(fleet.config_files))
    require_valid(fleet, [name])
    return fleet.instances[name], fleet.orchestrator


@config_app.command("render")
def render(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Instance name."),
    as_json: bool = typer.Option(False, "--json", help="Print argv and env as JSON."),
) -> None:
    """Print the exact llama-server command line for an instance, quoted for this platform.

    Example: llama-orch config render gpt-oss
    """
    from llama_orchestrator.config.argv import build_command, quote_command
    from llama_orchestrator.config.loader import resolve_binary

    config, orchestrator = _instance(ctx, name)
    binary = resolve_binary(config, orchestrator) or "llama-server"
    command = build_command(config, binary, {})
    if as_json:
        _console.print_json({"argv": command.argv, "env": command.redacted_env()})
        return
    for key, value in command.redacted_env().items():
        _console.info(f"# environment: {key}={value}")
    print(quote_command(command.argv))


@config_app.command("show")
def show(ctx: typer.Context, name: str = typer.Argument(..., help="Instance name.")) -> None:
    """Print the effective config of an instance: its file with defaults merged and paths resolved."""
    config, _ = _instance(ctx, name)
    print(json.dumps(config.model_dump(mode="json", by_alias=True, exclude={"schema_"}), indent=2))


def schema(
    kind: str = typer.Argument("instance", help="instance or orchestrator."),
) -> None:
    """Print the JSON Schema of a config file, so editors validate as you type.

    Example: llama-orch schema instance > instance.schema.json
    """
    if kind not in ("instance", "orchestrator"):
        raise typer.BadParameter(f"{kind!r}: choose 'instance' or 'orchestrator'", param_hint="KIND")
    from llama_orchestrator.config.schema import json_schema

    which: Literal["instance", "orchestrator"] = "instance" if kind == "instance" else "orchestrator"
    print(json.dumps(json_schema(which), indent=2))
