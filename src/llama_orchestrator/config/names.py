"""Instance names: safe as directory and file names on Windows and POSIX alike."""

from __future__ import annotations

import re
import unicodedata

NAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,61}[a-z0-9])?$")
_WINDOWS_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", "conin$", "conout$"} | {f"com{i}" for i in range(10)} | {f"lpt{i}" for i in range(10)}
)
NAME_RULE = "1-63 characters: lowercase letters, digits, '.', '_' or '-', starting and ending with a letter or digit"


def check_instance_name(name: str) -> str | None:
    """Return why `name` is unusable as an instance name, or None when it is fine."""
    if not name:
        return "name is empty; " + NAME_RULE
    if unicodedata.normalize("NFKC", name) != name or not name.isascii():
        return f"name {name[:40]!r} has non-ASCII characters; " + NAME_RULE
    if len(name) > 63:
        return f"name is {len(name)} characters long; " + NAME_RULE
    if ".." in name or "/" in name or "\\" in name:
        return f"name {name!r} contains a path separator or '..'; " + NAME_RULE
    if not NAME_PATTERN.match(name):
        return f"name {name!r} is not allowed; " + NAME_RULE
    if name.split(".", 1)[0] in _WINDOWS_RESERVED:
        return f"name {name!r} is reserved on Windows (like CON, NUL, COM1); choose another"
    return None


def suggest_name(name: str) -> str | None:
    """A valid name close to `name` ("My Model" -> "my-model") to offer in a fix, or None."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", unicodedata.normalize("NFKC", name).lower()).strip("-._")[:63].rstrip("-._")
    return slug if check_instance_name(slug) is None else None
