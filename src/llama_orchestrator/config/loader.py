"""Read and validate every config file of a home, reporting all problems at once.

Each problem names the file, the field path and the rule it breaks (`ConfigProblem`). Per-file
problems never stop the others from being checked; cross-file rules (unique ports, names that
match their directory) run over everything that parsed. `require_valid` turns the result into a
`ConfigError` for commands that cannot go on with a broken config.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any, cast

from pydantic import ValidationError

from llama_orchestrator import gguf_file
from llama_orchestrator.config.env_refs import expand_env_refs
from llama_orchestrator.config.fit import beyond_budget, beyond_training, cpu_oversubscribed
from llama_orchestrator.config.merge import deep_merge
from llama_orchestrator.config.models import InstanceConfig
from llama_orchestrator.config.names import check_instance_name
from llama_orchestrator.config.orchestrator import OrchestratorConfig
from llama_orchestrator.config.paths import ENV_LLAMA_SERVER, HomePaths
from llama_orchestrator.config.problems import problems_from_validation
from llama_orchestrator.config.server_flags import ServerFlags, config_problems
from llama_orchestrator.errors import ConfigError, ConfigProblem

Which = Callable[[str], str | None]
FlagsOf = Callable[[str], ServerFlags | None]


@dataclass(frozen=True)
class Fleet:
    """Everything a home's config files say, plus what is wrong with them."""

    orchestrator: OrchestratorConfig
    instances: dict[str, InstanceConfig]
    config_files: dict[str, Path]
    problems: list[ConfigProblem] = field(default_factory=list)

    @property
    def errors(self) -> list[ConfigProblem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[ConfigProblem]:
        return [p for p in self.problems if p.severity == "warning"]


def read_json(path: Path) -> tuple[Any, list[ConfigProblem]]:
    """Parse one JSON file; a syntax error becomes a problem with line and column."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        return None, [ConfigProblem(str(path), "", f"cannot read file: {exc.strerror or exc}")]
    except UnicodeDecodeError:
        return None, [ConfigProblem(str(path), "", "file is not UTF-8 text")]
    try:
        return json.loads(text), []
    except json.JSONDecodeError as exc:
        return None, [ConfigProblem(str(path), "", f"invalid JSON: {exc.msg}", line=exc.lineno, column=exc.colno)]


def load_orchestrator(
    paths: HomePaths, environ: Mapping[str, str] = os.environ
) -> tuple[OrchestratorConfig, list[ConfigProblem]]:
    """Read `orchestrator.json` (optional: a missing file means all defaults)."""
    path = paths.orchestrator_file
    if not path.exists():
        return OrchestratorConfig(), []
    raw, problems = _read_expanded(path, environ)
    if problems:
        return OrchestratorConfig(), problems
    try:
        config = OrchestratorConfig.model_validate(raw)
    except ValidationError as exc:
        return OrchestratorConfig(), problems_from_validation(exc, str(path), OrchestratorConfig)
    return config, _check_defaults(config, str(path))


def _check_defaults(config: OrchestratorConfig, file: str) -> list[ConfigProblem]:
    """Validate `defaults` by merging them under a minimal instance, reporting only their own keys."""
    if not config.defaults:
        return []
    probe = deep_merge(dict(config.defaults), {"name": "defaults-check", "model": {"path": "x"}, "server": {"port": 1}})
    try:
        InstanceConfig.model_validate(probe)
    except ValidationError as exc:
        found = problems_from_validation(exc, file, InstanceConfig, prefix="defaults.")
        return [p for p in found if p.field.split(".")[1] in config.defaults]
    return []


def instance_names(paths: HomePaths) -> list[str]:
    """Names of the instance directories that hold a config.json, sorted."""
    if not paths.instances_dir.is_dir():
        return []
    return sorted(p.parent.name for p in paths.instances_dir.glob("*/config.json"))


def _read_expanded(path: Path, environ: Mapping[str, str]) -> tuple[dict[str, Any], list[ConfigProblem]]:
    """A config file's JSON object with its `${env:NAME}` references filled in (config.env_refs)."""
    raw, problems = read_json(path)
    if problems:
        return {}, problems
    if not isinstance(raw, dict):
        return {}, [ConfigProblem(str(path), "", "top level must be a JSON object")]
    expanded, unset = expand_env_refs(raw, environ)
    return cast(dict[str, Any], expanded), [ConfigProblem(str(path), field, message) for field, message in unset]


def load_instance(
    path: Path, orchestrator: OrchestratorConfig, environ: Mapping[str, str] = os.environ
) -> tuple[InstanceConfig | None, list[ConfigProblem]]:
    """Read one instance config, merge the defaults under it, resolve relative paths."""
    file = str(path)
    directory_name = path.parent.name
    name_problem = check_instance_name(directory_name)
    if name_problem:
        return None, [ConfigProblem(file, "", f"instance directory {name_problem}")]
    raw, problems = _read_expanded(path, environ)
    if problems:
        return None, problems
    merged = deep_merge(dict(orchestrator.defaults), raw)
    merged.setdefault("name", directory_name)
    try:
        config = InstanceConfig.model_validate(merged)
    except ValidationError as exc:
        return None, problems_from_validation(exc, file, InstanceConfig)
    if config.name != directory_name:
        return None, [ConfigProblem(file, "name", f"name {config.name!r} must match its directory {directory_name!r}")]
    return resolve_relative_paths(config, path.parent), []


def resolve_relative_paths(config: InstanceConfig, base: Path) -> InstanceConfig:
    """Make file paths absolute, relative to the instance directory, so every tool sees the same file."""

    def absolute(value: str) -> str:
        # A Windows path (D:/models/x.gguf, \\server\share) stays as written on any platform: a
        # config authored on Windows must not turn into "<instance dir>/D:/models/..." elsewhere.
        if PureWindowsPath(value).drive:
            return value
        candidate = Path(value).expanduser()
        return str(candidate if candidate.is_absolute() else (base / candidate).absolute())

    model = config.model.model_copy(update={"path": absolute(config.model.path)})
    server = config.server
    if server.api_key_file:
        server = server.model_copy(update={"api_key_file": absolute(server.api_key_file)})
    return config.model_copy(update={"model": model, "server": server})


def resolve_binary(
    config: InstanceConfig,
    orchestrator: OrchestratorConfig,
    environ: Mapping[str, str] = os.environ,
    which: Which = shutil.which,
) -> str | None:
    """Which llama-server runs this instance: its own `binary`, its build, the env, then PATH."""
    if config.binary:
        return config.binary
    build = config.build or config.gpu.backend
    if build in orchestrator.builds:
        return orchestrator.builds[build]
    if environ.get(ENV_LLAMA_SERVER):
        return environ[ENV_LLAMA_SERVER]
    return which("llama-server")


def load_fleet(
    paths: HomePaths,
    *,
    offline: bool = False,
    environ: Mapping[str, str] = os.environ,
    which: Which = shutil.which,
    cores: int | None = None,
    flags_of: FlagsOf | None = None,
) -> Fleet:
    """Load and check every config of the home; never raises for problems in the files.
    `cores`: this machine's logical CPUs (os.cpu_count() when None), for the CPU-sharing warning.
    `flags_of`: the flags a binary knows (engine.server_help), to check command lines; not offline."""
    orchestrator, problems = load_orchestrator(paths, environ)
    instances: dict[str, InstanceConfig] = {}
    files: dict[str, Path] = {}
    for name in instance_names(paths):
        path = paths.instances_dir / name / "config.json"
        files[name] = path
        config, found = load_instance(path, orchestrator, environ)
        problems.extend(found)
        if config is not None:
            instances[name] = config
    problems.extend(_cross_checks(orchestrator, instances, files, paths, offline, environ, which))
    if flags_of is not None and not offline:
        problems.extend(_argument_checks(orchestrator, instances, files, environ, which, flags_of))
    gateway = orchestrator.gateway
    max_loaded = gateway.max_loaded if gateway.enabled else None  # without the gateway nothing enforces it
    problems.extend(cpu_oversubscribed(instances, files, cores or os.cpu_count() or 1, max_loaded))
    return Fleet(orchestrator, instances, files, problems)


def _argument_checks(
    orchestrator: OrchestratorConfig,
    instances: Mapping[str, InstanceConfig],
    files: Mapping[str, Path],
    environ: Mapping[str, str],
    which: Which,
    flags_of: FlagsOf,
) -> list[ConfigProblem]:
    """What each instance's llama-server would refuse on its command line."""
    return [problem for name, config in instances.items()
            for problem in argument_problems(config, str(files[name]), orchestrator, flags_of, environ, which)]


def argument_problems(
    config: InstanceConfig, file: str, orchestrator: OrchestratorConfig, flags_of: FlagsOf,
    environ: Mapping[str, str] = os.environ, which: Which = shutil.which,
) -> list[ConfigProblem]:
    """What the llama-server that runs `config` would refuse on its command line (nothing when
    there is no binary, or its flags cannot be read)."""
    binary = resolve_binary(config, orchestrator, environ, which)
    flags = flags_of(binary) if binary else None
    if not (binary and flags):
        return []
    return [ConfigProblem(file, field, message) for field, message in config_problems(config, binary, flags)]


def _cross_checks(
    orchestrator: OrchestratorConfig,
    instances: Mapping[str, InstanceConfig],
    files: Mapping[str, Path],
    paths: HomePaths,
    offline: bool,
    environ: Mapping[str, str],
    which: Which,
) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    missing_severity = "warning" if offline else "error"
    gateway_port = orchestrator.gateway.port if orchestrator.gateway.enabled else None
    by_port: dict[int, list[str]] = {}
    by_alias: dict[str, list[str]] = {}
    for name, config in instances.items():
        file = str(files[name])
        by_port.setdefault(config.server.port, []).append(name)
        for served in (config.served_name, *config.extra_aliases):
            by_alias.setdefault(served, []).append(name)
        for extra in config.extra_aliases:
            if extra in instances:
                what, where = ("variant", "variants") if extra in config.variants else ("alias", "model.aliases")
                problems.append(ConfigProblem(
                    file, where,
                    f"{what} {extra!r} is the name of instance {extra!r}: requests for it would go to both; "
                    "remove it or rename one of them",
                ))
        if config.server.port == gateway_port:
            problems.append(
                ConfigProblem(
                    file,
                    "server.port",
                    f"port {config.server.port} is the gateway's port (orchestrator.json gateway.port); choose another",
                )
            )
        if config.server.port == orchestrator.control.port:
            problems.append(
                ConfigProblem(
                    file,
                    "server.port",
                    f"port {config.server.port} is the control API's port (orchestrator.json control.port)",
                )
            )
        if (unloadable := gguf_file.problem(config.model.path)) is not None:
            problems.append(ConfigProblem(file, "model.path", unloadable, severity=missing_severity))
        elif not offline and (beyond := beyond_training(config)) is not None:
            problems.append(ConfigProblem(file, "model.context_size", beyond, severity="warning"))
        if unloadable is None and not offline and (over := beyond_budget(config, orchestrator.gateway)):
            problems.append(ConfigProblem(file, "memory_gib", over, severity="warning"))
        if config.gpu.devices and config.gpu.backend == "cpu":
            problems.append(
                ConfigProblem(
                    file, "gpu.devices", "devices apply to GPU backends; set gpu.backend or remove gpu.devices"
                )
            )
        if config.build and config.build not in orchestrator.builds:
            known = ", ".join(sorted(orchestrator.builds)) or "none defined"
            problems.append(
                ConfigProblem(file, "build", f"unknown build {config.build!r} (builds in orchestrator.json: {known})")
            )
        elif resolve_binary(config, orchestrator, environ, which) is None:
            problems.append(
                ConfigProblem(
                    file,
                    "gpu.backend",
                    f"no llama-server binary for backend {config.gpu.backend!r}: set builds.{config.gpu.backend}"
                    f" in orchestrator.json, `binary` here, {ENV_LLAMA_SERVER}, or put llama-server on PATH",
                    severity=missing_severity,
                )
            )
        if config.group and config.group not in orchestrator.gateway.group_limits:
            problems.append(ConfigProblem(
                file, "group", f"group {config.group!r} has no limit in orchestrator.json gateway.group_limits, "
                "so it limits nothing; add one, or remove group", severity="warning"))
        elif config.group and not config.on_demand:
            problems.append(ConfigProblem(
                file, "group", "group limits count on_demand instances only (the gateway starts and evicts "
                "those); this one runs whenever it is up", severity="warning"))
        if config.server.api_key_env and config.server.api_key_env not in environ:
            problems.append(
                ConfigProblem(
                    file,
                    "server.api_key_env",
                    f"environment variable {config.server.api_key_env} is not set",
                    severity="warning",
                )
            )
    for port, names in sorted(by_port.items()):
        if len(names) > 1:
            for name in names:
                others = ", ".join(n for n in names if n != name)
                problems.append(
                    ConfigProblem(
                        str(files[name]),
                        "server.port",
                        f"port {port} is also used by {others}; every instance needs its own port",
                    )
                )
    for alias, names in sorted(by_alias.items()):
        if len(names) > 1:
            # Shared aliases are replicas of one model; tell the user it is deliberate behaviour.
            problems.append(
                ConfigProblem(
                    str(files[names[0]]),
                    "model.alias" if instances[names[0]].served_name == alias
                    else "variants" if alias in instances[names[0]].variants else "model.aliases",
                    f"alias {alias!r} is shared by {', '.join(names)}: requests are balanced across them",
                    severity="warning",
                )
            )
    default = orchestrator.gateway.default_model
    if default and default not in by_alias and default not in instances:
        problems.append(ConfigProblem(
            str(paths.orchestrator_file), "gateway.default_model",
            f"{default!r} is no instance name or alias, so requests without a `model` get 404 naming it; "
            f"choose one of {', '.join(sorted({*instances, *by_alias})) or 'the instances you create'}",
            severity="warning",
        ))
    return problems


def require_valid(fleet: Fleet, names: Sequence[str] | None = None) -> Fleet:
    """Raise ConfigError listing every error (only those of `names` and orchestrator.json, if given)."""
    errors = fleet.errors
    if names is not None:
        wanted = {str(fleet.config_files[n]) for n in names if n in fleet.config_files}
        instance_files = {str(p) for p in fleet.config_files.values()}
        errors = [p for p in errors if p.file in wanted or p.file not in instance_files]
    if errors:
        raise ConfigError(errors, hint="run `llama-orch config validate` to list every problem")
    return fleet
