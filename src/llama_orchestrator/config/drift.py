"""How an instance's config file differs from what the daemon runs it with (`ps`'s `ready*`).

Two kinds of change: the command line (config.argv.command_change: `up` restarts the process)
and settings the daemon and its gateway read from the applied config while the process runs
(request_filters, variants, model.aliases, health, restart, ...: `up` applies them without a
restart). Both wait for a command that re-reads the configs (`up`, `start`, `restart`, ...), so
both are marked. Which fields are settings is not listed by hand: a field whose new value leaves
the rendered command unchanged is one, so a field added later is judged the same way.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel

from llama_orchestrator.config.argv import LaunchCommand, command_change
from llama_orchestrator.config.models import InstanceConfig

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


class ConfigDrift:
    """One instance's drift: the command its process runs with (`running`, set at each spawn or
    adoption; its environment None when not known), compared with what a config renders. Both
    renders are cached by config identity: `ps --watch` and the dashboard ask on every refresh, and
    the configs stay the same objects until a file changes or the daemon applies them."""

    def __init__(self, render: Render) -> None:
        self._render = render
        self.running: tuple[list[str], dict[str, str] | None] | None = None
        self._wanted: tuple[InstanceConfig, LaunchCommand] | None = None
        self._settings: tuple[InstanceConfig, InstanceConfig, list[str]] | None = None

    def command(self, config: InstanceConfig) -> str | None:
        """How the command `config` renders differs from the running one (`up` restarts for it)."""
        if self.running is None:
            return None
        if self._wanted is None or self._wanted[0] is not config:
            self._wanted = (config, self._render(config))
        return command_change(*self.running, self._wanted[1])

    def describe(self, applied: InstanceConfig, on_disk: InstanceConfig | None) -> str | None:
        """What `up` would apply of `on_disk` to a process running under `applied`, or None."""
        if on_disk is None:
            return self.command(applied)
        last = self._settings
        if last is None or last[0] is not applied or last[1] is not on_disk:
            last = self._settings = (applied, on_disk, settings_change(applied, on_disk, self._render))
        return describe_change(self.command(on_disk), last[2])
