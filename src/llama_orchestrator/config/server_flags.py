"""The flags a llama-server binary knows, read from its `--help`, and what a command line gets wrong.

llama-server stops at the first argument it does not know ("error: invalid argument: --ctx-sise")
and takes no `--flag=value`. Checking the command line against the installed binary's own help
catches both before a start, with the nearest real flag named, and catches a binary too old for
a flag the orchestrator renders (`--no-jinja` for a built-in chat template, say).

Help lines look like `-c,    --ctx-size N    description`: the flags, comma-separated, then the
value placeholder after one space (`START END` is two values), then two or more spaces.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from llama_orchestrator.config.argv import build_command
from llama_orchestrator.config.models import InstanceConfig

_HELP_LINE = re.compile(r"^(-[A-Za-z-][^\s,]*(?:,\s+-[A-Za-z-][^\s,]*)*)(?: (\S.*?))?(?:\s{2,}|$)")
_LOOKS_LIKE_FLAG = re.compile(r"^--?[A-Za-z]")
_SPACE_OUTSIDE_ANGLES = re.compile(r" (?![^<]*>)")  # `<tensor name pattern>` is one placeholder


@dataclass(frozen=True)
class ServerFlags:
    """Each flag the binary knows, with how many values follow it."""

    values: dict[str, int]

    def __contains__(self, flag: object) -> bool:
        return flag in self.values

    def nearest(self, flag: str) -> str | None:
        found = difflib.get_close_matches(flag, list(self.values), n=1, cutoff=0.75)
        return found[0] if found else None


def parse_help(text: str) -> ServerFlags | None:
    """The flags in llama-server's `--help` output; None if `text` does not read as one (a wrapper
    script's or another program's help), so that nothing is judged against it."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith("---") or not (match := _HELP_LINE.match(line)):
            continue
        placeholder = match.group(2)
        count = len(_SPACE_OUTSIDE_ANGLES.split(placeholder)) if placeholder else 0
        for flag in re.split(r",\s+", match.group(1)):
            values[flag] = count
    if not {"--host", "--port", "--model"} <= values.keys():
        return None
    return ServerFlags(values)


def argument_problems(args: Sequence[str], flags: ServerFlags, who: str = "this llama-server") -> list[str]:
    """What llama-server (`who`) would refuse in `args`, its arguments after the program, one line each."""
    problems: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not _LOOKS_LIKE_FLAG.match(arg):
            problems.append(f"{arg!r} follows no flag that takes a value")
            continue
        if arg in flags:
            i += flags.values[arg]
            continue
        name, has_value, value = arg.partition("=")
        if has_value and name in flags:
            problems.append(f"{arg}: llama-server takes no --flag=value; give {name} and {value!r} "
                            "as two arguments")
            continue
        nearest = flags.nearest(arg)
        problems.append(f"{arg} is not a flag of {who}"
                        + (f"; did you mean {nearest}?" if nearest else "; see its --help"))
        if i < len(args) and not _LOOKS_LIKE_FLAG.match(args[i]):
            i += 1  # most likely the unknown flag's value: one problem, not two
    return problems


def config_problems(config: InstanceConfig, binary: str, flags: ServerFlags) -> list[tuple[str, str]]:
    """(field, message) for each argument of `config`'s command line that `binary` would refuse:
    in `args`, or in what the orchestrator renders from the other settings (an older binary)."""
    rendered = build_command(config.model_copy(update={"args": []}), binary, {}).argv[1:]
    found = [("binary", f"{binary} is older than this config needs: {problem} (the orchestrator passes it for "
                        f"this config; `llama-orch config render {config.name}` shows the command). Use a newer "
                        "llama-server, or change the setting that brings the flag")
             for problem in argument_problems(rendered, flags, binary)]
    found += [("args", problem) for problem in argument_problems(config.args, flags, binary)]
    return found
