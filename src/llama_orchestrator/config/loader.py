"""Read and validate every config file of a home, reporting all problems at once.

Each problem names the file, the field path and the rule it breaks (`ConfigProblem`). Per-file
problems never stop the others from being checked (config.file_checks); cross-file rules (unique
ports, aliases, model files, binaries) run over every field that is valid, in every file that
parsed, with the invalid ones set aside (config.partial). `require_valid` turns the result into a
`ConfigError` for commands that cannot go on with a broken config.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence, Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path

from llama_orchestrator import gguf_file
from llama_orchestrator.config.file_checks import check_instance, check_orchestrator, defaults_problems
from llama_orchestrator.config.fit import beyond_budget, beyond_training, cpu_oversubscribed
from llama_orchestrator.config.models import InstanceConfig
from llama_orchestrator.config.orchestrator import OrchestratorConfig
from llama_orchestrator.config.partial import Partial
from llama_orchestrator.config.paths import ENV_LLAMA_SERVER, HomePaths
from llama_orchestrator.config.server_flags import ServerFlags, config_problems
from llama_orchestrator.errors import ConfigError, ConfigProblem

Which = Callable[[str], str | None]
FlagsOf = Callable[[str], ServerFlags | None]


@dataclass(frozen=True)
class Fleet:
    """Everything a home's config files say, plus what is wrong with them."""

    orchestrator: OrchestratorConfig  # all defaults while orchestrator.json has errors (but in its defaults)
    instances: dict[str, InstanceConfig]  # the valid ones
    config_files: dict[str, Path]
    problems: list[ConfigProblem] = field(default_factory=list)
    # what orchestrator.json says with its invalid fields set aside, for checks that need not wait for them
    orchestrator_read: Partial[OrchestratorConfig] = field(default_factory=lambda: Partial(OrchestratorConfig()))

    @property
    def errors(self) -> list[ConfigProblem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[ConfigProblem]:
        return [p for p in self.problems if p.severity == "warning"]

    def errors_in(self, name: str) -> list[ConfigProblem]:
        """The errors found in instance `name`'s config file."""
        file = str(self.config_files.get(name, ""))
        return [p for p in self.errors if p.file == file]


def instance_names(paths: HomePaths) -> list[str]:
    """Names of the instance directories that hold a config.json, sorted."""
    if not paths.instances_dir.is_dir():
        return []
    return sorted(p.parent.name for p in paths.instances_dir.glob("*/config.json"))


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


def binary_source(config: InstanceConfig, orchestrator: OrchestratorConfig, environ: Mapping[str, str] = os.environ
                  ) -> str:
    """Where resolve_binary finds this instance's llama-server, as the user would set it."""
    build = config.build or config.gpu.backend
    if config.binary:
        return "binary"
    if build in orchestrator.builds:
        return f"builds.{build}"
    return ENV_LLAMA_SERVER if environ.get(ENV_LLAMA_SERVER) else "PATH"


def unrunnable(binary: str, which: Which = shutil.which) -> str | None:
    """Why the configured `binary` (a path, or a name on PATH) cannot be run, or None."""
    if not os.path.dirname(binary):
        return None if which(binary) else f"{binary!r} is not on PATH"
    if not os.path.isfile(binary):
        return f"{binary} does not exist"
    if not os.access(binary, os.X_OK):
        return f"{binary} is not executable"
    return None


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
    read, problems = check_orchestrator(paths.orchestrator_file, environ)
    orchestrator = OrchestratorConfig() if problems else read.config
    problems += defaults_problems(read.config, str(paths.orchestrator_file))  # those set aside left out
    checked: dict[str, Partial[InstanceConfig]] = {}
    instances: dict[str, InstanceConfig] = {}
    files: dict[str, Path] = {}
    for name in instance_names(paths):
        path = paths.instances_dir / name / "config.json"
        files[name] = path
        partial, found = check_instance(path, read.config.defaults, environ)
        problems.extend(found)
        if partial is not None:
            checked[name] = partial
            if not found:
                instances[name] = partial.config
    problems.extend(_cross_checks(read, checked, instances.keys(), files, paths, offline, environ, which))
    if flags_of is not None and not offline:
        problems.extend(_argument_checks(read, checked, files, environ, which, flags_of))
    gateway = orchestrator.gateway
    max_loaded = gateway.max_loaded if gateway.enabled else None  # without the gateway nothing enforces it
    problems.extend(cpu_oversubscribed(instances, files, cores or os.cpu_count() or 1, max_loaded))
    return Fleet(orchestrator, instances, files, problems, read)


def _argument_checks(
    orchestrator: Partial[OrchestratorConfig],
    instances: Mapping[str, Partial[InstanceConfig]],
    files: Mapping[str, Path],
    environ: Mapping[str, str],
    which: Which,
    flags_of: FlagsOf,
) -> list[ConfigProblem]:
    """What each instance's llama-server would refuse on its command line (of those whose
    arguments and binary are known: a field set aside renders no flag, so it adds no false one)."""
    return [problem for name, checked in instances.items() if _binary_known(checked, orchestrator)
            and checked.known("args")
            for problem in argument_problems(checked.config, str(files[name]), orchestrator.config, flags_of, environ,
                                             which)]


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


def unchecked_reason(
    config: InstanceConfig, orchestrator: OrchestratorConfig, flags_of: FlagsOf,
    environ: Mapping[str, str] = os.environ, which: Which = shutil.which,
) -> str | None:
    """Why argument_problems could judge nothing of `config` (no binary, or none that tells its
    flags), for a warning: a misspelt flag would otherwise pass unsaid. None when it could."""
    binary = resolve_binary(config, orchestrator, environ, which)
    what = "the extra arguments were" if config.args else "the command line was"
    if binary is None:
        return (f"{what} not checked: no llama-server binary found; set {ENV_LLAMA_SERVER} or "
                f"builds.{config.gpu.backend} in orchestrator.json")
    if flags_of(binary) is None:
        why = unrunnable(binary, which) or "it did not answer --help as llama-server does"
        source = binary_source(config, orchestrator, environ)
        return f"{what} not checked against llama-server's flags: {why} ({source})"
    return None


def _binary_known(checked: Partial[InstanceConfig], orchestrator: Partial[OrchestratorConfig]) -> bool:
    return checked.known("binary", "build", "gpu.backend") and orchestrator.known("builds")


def _cross_checks(
    read: Partial[OrchestratorConfig],
    instances: Mapping[str, Partial[InstanceConfig]],
    valid: AbstractSet[str],
    files: Mapping[str, Path],
    paths: HomePaths,
    offline: bool,
    environ: Mapping[str, str],
    which: Which,
) -> list[ConfigProblem]:
    """The rules across files, each over the fields it reads that are known (Partial.known).
    A clash of a valid instance with an invalid one is an error in the invalid one's file only
    (a warning in the other's): it is to be settled there, and must not stop the valid one."""
    problems: list[ConfigProblem] = []

    def clash(name: str, others: Iterable[str]) -> str:
        return "error" if name not in valid or any(other in valid for other in others) else "warning"

    orchestrator = read.config
    missing_severity = "warning" if offline else "error"
    gateway_port = orchestrator.gateway.port if orchestrator.gateway.enabled else None
    if not read.known("gateway.port", "gateway.enabled"):
        gateway_port = None
    control_port = orchestrator.control.port if read.known("control.port") else None
    by_port: dict[int, list[str]] = {}
    by_alias: dict[str, list[str]] = {}
    # whose names the rules on names can judge (an alias or variant set aside is left out, and clashes with none)
    named = {name: c.config for name, c in instances.items() if c.known("name", "model.alias")}
    every_name = all(c.known("name", "model.alias", "model.aliases", "variants") for c in instances.values())
    for name, checked in instances.items():
        config, known = checked.config, checked.known
        file = str(files[name])
        if known("server.port"):
            by_port.setdefault(config.server.port, []).append(name)
        if name in named:
            for served in (config.served_name, *config.extra_aliases):
                by_alias.setdefault(served, []).append(name)
            for extra in config.extra_aliases:
                if extra in instances:
                    what, where = ("variant", "variants") if extra in config.variants else ("alias", "model.aliases")
                    problems.append(ConfigProblem(
                        file, where,
                        f"{what} {extra!r} is the name of instance {extra!r}: requests for it would go to both; "
                        "remove it or rename one of them", severity=clash(name, [extra]),
                    ))
        if known("server.port") and config.server.port == gateway_port:
            problems.append(
                ConfigProblem(
                    file,
                    "server.port",
                    f"port {config.server.port} is the gateway's port (orchestrator.json gateway.port); choose another",
                )
            )
        if known("server.port") and config.server.port == control_port:
            problems.append(
                ConfigProblem(
                    file,
                    "server.port",
                    f"port {config.server.port} is the control API's port (orchestrator.json control.port)",
                )
            )
        unloadable = gguf_file.problem(config.model.path) if known("model.path") else None
        whole = not checked.unknown and not read.unknown  # the warnings below read most of both files
        if unloadable is not None:
            problems.append(ConfigProblem(file, "model.path", unloadable, severity=missing_severity))
        elif whole and not offline and (beyond := beyond_training(config)) is not None:
            problems.append(ConfigProblem(file, "model.context_size", beyond, severity="warning"))
        if whole and unloadable is None and not offline and (over := beyond_budget(config, orchestrator.gateway)):
            problems.append(ConfigProblem(file, "memory_gib", over, severity="warning"))
        if known("gpu.devices", "gpu.backend") and config.gpu.devices and config.gpu.backend == "cpu":
            problems.append(
                ConfigProblem(
                    file, "gpu.devices", "devices apply to GPU backends; set gpu.backend or remove gpu.devices"
                )
            )
        if known("gpu.layers", "gpu.backend") and config.gpu.backend == "cpu" and config.gpu.layers not in (
                None, 0, "auto"):
            problems.append(ConfigProblem(
                file, "gpu.layers", f"backend cpu runs a CPU build of llama-server, which ignores gpu.layers "
                f"{config.gpu.layers!r}; set gpu.backend to your GPU's, or remove gpu.layers", severity="warning"))
        if (known("server.host", "server.api_key_env", "server.api_key_file") and not _loopback(config.server.host)
                and not (config.server.api_key_env or config.server.api_key_file)):
            problems.append(ConfigProblem(
                file, "server.host", f"llama-server on {config.server.host!r} answers anyone who reaches it, with no "
                "key (the gateway's keys do not guard it); set server.api_key_env or server.api_key_file, or keep "
                "host 127.0.0.1 and serve others through the gateway", severity="warning"))
        if known("binary") and config.binary and (why := unrunnable(config.binary, which)):
            problems.append(ConfigProblem(file, "binary", f"{why}: point it at a llama-server binary, or remove it "
                                          "to use the build orchestrator.json names", severity=missing_severity))
        if _binary_known(checked, read):
            problems.extend(_binary_problems(config, orchestrator, file, environ, which, missing_severity))
        if known("group", "on_demand") and read.known("gateway.group_limits"):
            if config.group and config.group not in orchestrator.gateway.group_limits:
                problems.append(ConfigProblem(
                    file, "group", f"group {config.group!r} has no limit in orchestrator.json gateway.group_limits, "
                    "so it limits nothing; add one, or remove group", severity="warning"))
            elif config.group and not config.on_demand:
                problems.append(ConfigProblem(
                    file, "group", "group limits count on_demand instances only (the gateway starts and evicts "
                    "those); this one runs whenever it is up", severity="warning"))
        if known("server.api_key_env") and config.server.api_key_env and config.server.api_key_env not in environ:
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
                        severity=clash(name, (n for n in names if n != name)),
                    )
                )
    for alias, names in sorted(by_alias.items()):
        if len(names) > 1:
            # Shared aliases are replicas of one model; tell the user it is deliberate behaviour.
            problems.append(
                ConfigProblem(
                    str(files[names[0]]),
                    "model.alias" if named[names[0]].served_name == alias
                    else "variants" if alias in named[names[0]].variants else "model.aliases",
                    f"alias {alias!r} is shared by {', '.join(names)}: requests are balanced across them",
                    severity="warning",
                )
            )
    if read.known("builds"):  # a build no instance uses (a CUDA path shared with another machine) only warns
        used = {c.config.build or c.config.gpu.backend for c in instances.values()}
        problems.extend(ConfigProblem(str(paths.orchestrator_file), f"builds.{build}", f"{why}: point it at a "
                                      "llama-server binary, or remove it",
                                      severity=missing_severity if build in used else "warning")
                        for build, binary in sorted(orchestrator.builds.items()) if (why := unrunnable(binary, which)))
    default = orchestrator.gateway.default_model
    if default and default not in by_alias and default not in instances and every_name:
        problems.append(ConfigProblem(
            str(paths.orchestrator_file), "gateway.default_model",
            f"{default!r} is no instance name or alias, so requests without a `model` get 404 naming it; "
            f"choose one of {', '.join(sorted({*instances, *by_alias})) or 'the instances you create'}",
            severity="warning",
        ))
    return problems


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _binary_problems(
    config: InstanceConfig, orchestrator: OrchestratorConfig, file: str, environ: Mapping[str, str], which: Which,
    severity: str,
) -> list[ConfigProblem]:
    """A build orchestrator.json does not define, or no llama-server to run the instance at all."""
    if config.build and config.build not in orchestrator.builds:
        known = ", ".join(sorted(orchestrator.builds)) or "none defined"
        return [ConfigProblem(file, "build", f"unknown build {config.build!r} (builds in orchestrator.json: {known})")]
    if resolve_binary(config, orchestrator, environ, which) is None:
        return [ConfigProblem(
            file,
            "gpu.backend",
            f"no llama-server binary for backend {config.gpu.backend!r}: set builds.{config.gpu.backend}"
            f" in orchestrator.json, `binary` here, {ENV_LLAMA_SERVER}, or put llama-server on PATH",
            severity=severity,
        )]
    return []


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
