"""`${env:NAME}` in config strings: the value of an environment variable, put in where it is named.

Paths that differ per machine (`"${env:MODELS}/qwen.gguf"`) and values kept out of files (an
`env` entry for the server, a header value) can then live in the environment of whoever reads
the configs: the daemon's, when it runs as a service. A variable that is not set is a config
error naming the field and the variable; nothing is guessed. Only string values are expanded,
never keys. (For llama-server's API key there are `server.api_key_env` and `api_key_file`,
which keep it off the command line.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from llama_orchestrator._platform import IS_WINDOWS

_REFERENCE = re.compile(r"\$\{env:([^}]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Problem = tuple[str, str]  # (field path, message)


def expand_env_refs(
    value: object, environ: Mapping[str, str], *, fold_case: bool = IS_WINDOWS
) -> tuple[object, list[Problem]]:
    """`value` (parsed JSON) with every `${env:NAME}` in its strings replaced, and what could not be.
    `fold_case`: variable names are case-insensitive, as on Windows."""
    lookup = {k.upper(): v for k, v in environ.items()} if fold_case else environ
    problems: list[Problem] = []

    def walk(item: object, path: str) -> object:
        if isinstance(item, str):
            return _REFERENCE.sub(lambda m: replace(m, path), item) if "${env:" in item else item
        if isinstance(item, dict):
            return {k: walk(v, f"{path}.{k}" if path else str(k)) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v, f"{path}.{i}" if path else str(i)) for i, v in enumerate(item)]
        return item

    def replace(match: re.Match[str], path: str) -> str:
        name = match.group(1)
        if not _NAME.match(name):
            problems.append((path, f"{match.group(0)!r} does not name a variable: write ${{env:NAME}} with "
                                   "letters, digits and underscores"))
            return match.group(0)
        found = lookup.get(name.upper() if fold_case else name)
        if found is None:
            problems.append((path, f"environment variable {name} is not set (the config uses ${{env:{name}}}); "
                                   "set it where the configs are read: for the daemon, in its environment"))
            return match.group(0)
        return found

    return walk(value, ""), problems
