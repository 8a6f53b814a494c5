"""Read and check one config file (orchestrator.json, or an instance's config.json) on its own.

Each returns every problem of the file and what is left of its config once its invalid fields are
set aside (config.partial), so that the checks across files (config.loader) still run over the
rest: a bad name or an unset variable hides none of the file's other problems.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path, PureWindowsPath
from typing import Any, cast

from pydantic import ValidationError

from llama_orchestrator.config.env_refs import expand_env_refs
from llama_orchestrator.config.merge import deep_merge
from llama_orchestrator.config.models import InstanceConfig
from llama_orchestrator.config.names import check_instance_name, suggest_name
from llama_orchestrator.config.orchestrator import OrchestratorConfig
from llama_orchestrator.config.partial import FieldPath, Partial, aside_path, unknowable, validate_partially
from llama_orchestrator.config.problems import problems_from_validation
from llama_orchestrator.config.rules import CHECKED_APART, instance_findings, orchestrator_findings
from llama_orchestrator.errors import ConfigProblem

#: What stands in for a required field set aside, so that the rest of the config can be built.
#: Never judged: the field is unknown (Partial.known), and its own problem is already reported.
_STAND_INS: dict[FieldPath, object] = {("model", "path"): "set-aside", ("server", "port"): 1}


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


def _read_expanded(
    path: Path, environ: Mapping[str, str]
) -> tuple[dict[str, Any] | None, list[FieldPath], list[ConfigProblem]]:
    """A config file's JSON object with its `${env:NAME}` references filled in (config.env_refs),
    and the fields whose variables are unset: unknown, so set aside (None: nothing to check)."""
    raw, problems = read_json(path)
    if problems:
        return None, [], problems
    if not isinstance(raw, dict):
        return None, [], [ConfigProblem(str(path), "", "top level must be a JSON object")]
    filled, unset = expand_env_refs(raw, environ)
    expanded = cast(dict[str, Any], filled)
    aside = [aside_path(expanded, field.split(".")) for field, _ in unset]
    return expanded, aside, [ConfigProblem(str(path), field, message) for field, message in unset]


def check_orchestrator(
    path: Path, environ: Mapping[str, str] = os.environ
) -> tuple[Partial[OrchestratorConfig], list[ConfigProblem]]:
    """`orchestrator.json` (optional: a missing file means all defaults) and its problems, but
    those of its `defaults` (`defaults_problems`)."""
    if not path.exists():
        return Partial(OrchestratorConfig()), []
    raw, aside, problems = _read_expanded(path, environ)
    if raw is None:
        return unknowable(OrchestratorConfig), problems
    partial, error = validate_partially(OrchestratorConfig, raw, aside=aside)
    if error is not None:
        problems += problems_from_validation(error, str(path), OrchestratorConfig)
    if partial is None:
        return unknowable(OrchestratorConfig), problems
    problems += [ConfigProblem(str(path), f, m) for f, m in orchestrator_findings(partial.config, partial.known)]
    return partial, problems


def defaults_problems(config: OrchestratorConfig, file: str) -> list[ConfigProblem]:
    """Validate `defaults` by merging them under a minimal instance, reporting only their own keys
    (the rules across fields are judged in each instance, whose own fields may satisfy them)."""
    if not config.defaults:
        return []
    probe = deep_merge(dict(config.defaults), {"name": "defaults-check", "model": {"path": "x"}, "server": {"port": 1}})
    try:
        InstanceConfig.model_validate(probe, context={CHECKED_APART: True})
    except ValidationError as exc:
        found = problems_from_validation(exc, file, InstanceConfig, prefix="defaults.")
        return [p for p in found if p.field.split(".")[1] in config.defaults]
    return []


def check_instance(
    path: Path, defaults: Mapping[str, object], environ: Mapping[str, str] = os.environ
) -> tuple[Partial[InstanceConfig] | None, list[ConfigProblem]]:
    """One instance config with `defaults` merged under it and relative paths resolved, and every
    problem of its own (the config is valid when there is none)."""
    file = str(path)
    directory = path.parent.name
    raw, aside, problems = _read_expanded(path, environ)
    named = raw.get("name") if raw is not None else None
    naming = _name_problems(file, directory, named)
    if raw is None:
        return None, naming + problems
    problems = naming + problems
    merged = deep_merge(dict(defaults), raw)
    merged.setdefault("name", directory)
    if naming and (named is None or isinstance(named, str)):
        aside.append(("name",))  # reported above: its validation would only say it again
    # the name the directory has, or is told to take: what messages naming the instance should say
    stand_ins = {**_STAND_INS, ("name",): suggest_name(directory) or "set-aside"}
    partial, error = validate_partially(InstanceConfig, merged, aside=aside, stand_ins=stand_ins)
    if error is not None:
        problems += problems_from_validation(error, file, InstanceConfig)
    if partial is None:
        return None, problems
    partial = replace(partial, config=resolve_relative_paths(partial.config, path.parent))
    problems += [ConfigProblem(file, f, m) for f, m in instance_findings(partial.config, partial.known)]
    return partial, problems


def _name_problems(file: str, directory: str, named: object) -> list[ConfigProblem]:
    """A directory that is no valid instance name, and a `name` field that is not the directory's."""
    problems = []
    wrong_directory = check_instance_name(directory)
    if wrong_directory:
        proper = suggest_name(named if isinstance(named, str) else directory)
        to = f" to {proper!r}" if proper else ""
        problems.append(ConfigProblem(
            file, "", f"instance directory {wrong_directory}; rename the directory{to}: it names the instance"))
    if isinstance(named, str) and named != directory:
        if not wrong_directory:
            fix = f"set it to {directory!r} or remove it (the directory names the instance)"
        elif check_instance_name(named):
            fix = "set it to the directory's new name, or remove it"
        else:
            return problems  # renaming the directory to it, as said above, settles both
        problems.append(ConfigProblem(file, "name", f"name {named!r} must match its directory {directory!r}: {fix}"))
    return problems


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
