"""How an instance's config file differs from what the daemon runs it with (`ps`'s `ready*`).

Two kinds of change: the command line (config.argv.command_change: `up` restarts the process)
and settings the daemon and its gateway read from the applied config while the process runs
(request_filters, variants, model.aliases, health, restart, ...: `up` applies them without a
restart). Both wait for a command that re-reads the configs (`up`, `start`, `restart`, ...), so
both are marked. Which fields are settings is not listed by hand: a field whose new value leaves
the rendered command unchanged is one, so a field added later is judged the same way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pydantic import BaseModel

from llama_orchestrator.config.argv import LaunchCommand, command_change
from llama_orchestrator.config.models import InstanceConfig
from llama_orchestrator.errors import ConfigProblem

Render = Callable[[InstanceConfig], LaunchCommand]
_NOT_SETTINGS = frozenset({"schema_"})  # `$schema` only helps editors


def settings_change(applied: InstanceConfig, on_disk: InstanceConfig, render: Render) -> list[str]:
    """The fields (`variants`, `request_filters.set_params`) whose value on disk differs from the
    applied one but renders the same command: what `up` applies without a restart."""
    candidates: list[tuple[str, dict[str, object]]] = []
    for name, field in type(applied).model_fields.items():
        old, new = getattr(applied, name), getattr(on_disk, name)
        if name in _NOT_SETTINGS or old == new:
            continue
        label = field.alias or name
        if isinstance(old, BaseModel) and type(new) is type(old):  # a section: name its fields
            candidates += [(f"{label}.{sub.alias or key}", {name: old.model_copy(update={key: getattr(new, key)})})
                           for key, sub in type(old).model_fields.items() if getattr(old, key) != getattr(new, key)]
        else:
            candidates.append((label, {name: new}))
    if not candidates:
        return []
    command = render(applied)
    return [label for label, update in candidates if render(applied.model_copy(update=update)) == command]


def describe_change(command: str | None, settings: list[str]) -> str | None:
    """One line for `ps`, `inspect` and the dashboard: the command's change, then the settings'."""
    if not settings:
        return command
    named = "settings " + ", ".join(settings)
    return f"{command}; {named}" if command else f"{named}; no restart needed"


def invalid_config(problems: list[ConfigProblem]) -> str:
    """`changed` of an instance whose file no longer parses or validates: the daemon keeps its last
    valid config, so `ps` marks it and `inspect` says why rather than showing it as unchanged."""
    first = problems[0] if problems else None
    what = f"{first.field}: {first.message}" if first is not None and first.field else (first.message if first else "")
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"config invalid: {' '.join(what.split())}{more}; `llama-orch config validate` lists every problem"


def _digests(env: Mapping[str, str], salt: str) -> dict[str, str]:
    return {name: hashlib.sha256(f"{salt}\0{value}".encode()).hexdigest()[:16] for name, value in env.items()}


@dataclass(frozen=True, slots=True)
class RunningCommand:
    """The command a process runs with, as state.db keeps it for the next daemon: the argv the
    daemon spawned, and each environment variable's value as a digest salted with the child's
    token (an API key in the environment never reaches the disk). `env` None: not known."""

    argv: list[str]
    env: dict[str, str] | None
    salt: str = ""

    @classmethod
    def spawned(cls, command: LaunchCommand, salt: str) -> RunningCommand:
        return cls(list(command.argv), _digests(command.env, salt), salt)

    def dumps(self) -> str:
        return json.dumps({"argv": self.argv, "env": self.env})

    @classmethod
    def loads(cls, text: str | None, salt: str) -> RunningCommand | None:
        """The command `dumps` wrote, or None for no record (or a damaged one)."""
        try:
            data = json.loads(text) if text else None
        except ValueError:
            return None
        argv, env = (data.get("argv"), data.get("env")) if isinstance(data, dict) else (None, None)
        if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
            return None
        known = isinstance(env, dict) and all(isinstance(v, str) for v in env.values())
        return cls(argv, env if known else None, salt)


class ConfigDrift:
    """One instance's drift: the command its process runs with (`running`, set at each spawn or
    adoption), compared with what a config renders. Both renders are cached by config identity:
    `ps --watch` and the dashboard ask on every refresh, and the configs stay the same objects
    until a file changes or the daemon applies them."""

    def __init__(self, render: Render) -> None:
        self._render = render
        self.running: RunningCommand | None = None
        self._wanted: tuple[InstanceConfig, str, LaunchCommand] | None = None
        self._settings: tuple[InstanceConfig, InstanceConfig, list[str]] | None = None

    def adopt(self, recorded: str | None, salt: str, os_argv: Callable[[], list[str] | None]) -> None:
        """An adopted process runs the command recorded at its spawn (its identity proves it is
        that process). What the OS shows is the fallback for a record from before commands were
        recorded: after a wrapper script's `exec` it names the real server, not the binary run."""
        self.running = RunningCommand.loads(recorded, salt)
        if self.running is None:
            argv = os_argv()
            self.running = RunningCommand(argv, None) if argv else None

    def recorded(self) -> str | None:
        """The running command as state.db keeps it (`adopt` reads it back)."""
        return self.running.dumps() if self.running else None

    def command(self, config: InstanceConfig) -> str | None:
        """How the command `config` renders differs from the running one (`up` restarts for it)."""
        running = self.running
        if running is None:
            return None
        if self._wanted is None or self._wanted[0] is not config or self._wanted[1] != running.salt:
            rendered = self._render(config)
            self._wanted = (config, running.salt, LaunchCommand(rendered.argv, _digests(rendered.env, running.salt)))
        return command_change(running.argv, running.env, self._wanted[2])

    def describe(self, applied: InstanceConfig, on_disk: InstanceConfig | None) -> str | None:
        """What `up` would apply of `on_disk` to a process running under `applied`, or None."""
        if on_disk is None:
            return self.command(applied)
        last = self._settings
        if last is None or last[0] is not applied or last[1] is not on_disk:
            last = self._settings = (applied, on_disk, settings_change(applied, on_disk, self._render))
        return describe_change(self.command(on_disk), last[2])
