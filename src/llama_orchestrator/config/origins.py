"""Who may call the gateway from a browser: what `gateway.cors_origins` entries mean, and which
Host names a keyless gateway answers (`local_host`, against DNS rebinding).

    origin_problem(["localhost:3000"])    # "'localhost:3000' is not an origin: write ..." (None when valid)
    allows = origin_matcher(["http://localhost:*", "app://*"])
    allows("http://localhost:5173")       # True
    allows("https://example.com")         # False

An entry is an origin as browsers send it (`scheme://host[:port]`, no path), where `*` stands
for any run of characters within the host or port. A trailing `:*` also matches the origin with
no port at all (`http://localhost:*` allows `http://localhost`). `*` alone allows every origin;
`null` allows pages opened from files (and sandboxed frames of any site, which send it too).

    local_host("127.0.0.1:8000")            # True: an address, not a name a web site controls
    local_host("host.docker.internal:8000") # True: a container on Docker Desktop reaching the host
    local_host("rebind.evil.example:8000")  # False
L1: stdlib only.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Callable, Iterable

# what a browser's Origin header can hold, with `*` where a pattern may stand for any part
_SHAPE = re.compile(r"[a-z][a-z0-9+.-]*://(\[[0-9a-f:.*]+\]|[a-z0-9*._~%-]+)(:[0-9*]+)?", re.IGNORECASE)

DEFAULT_ORIGINS = (
    # pages served from this machine (a chat UI on localhost:3000, a notebook, llama.cpp's web UI)
    "http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*",
    "https://localhost:*", "https://127.0.0.1:*", "https://[::1]:*",
    # desktop apps built on web views (Obsidian's app://obsidian.md, Tauri, VS Code and its forks)
    "app://*", "tauri://*", "vscode-webview://*", "vscode-file://*",
    # browser extensions the user installed (Page Assist and the like; Ollama users must allow them by hand)
    "chrome-extension://*", "moz-extension://*",
)


def origin_problem(patterns: Iterable[str]) -> str | None:
    """What is wrong with the patterns that are no origin pattern, or None if all are."""
    bad = [repr(p) for p in patterns if p not in ("*", "null") and not _SHAPE.fullmatch(p)]
    if not bad:
        return None
    return (f"{', '.join(bad)} {'is not an origin' if len(bad) == 1 else 'are not origins'}: write "
            "scheme://host[:port] with no path or trailing slash, e.g. http://localhost:3000, with * for any part "
            "of the host or port (or * alone for every origin)")


def origin_matcher(patterns: Iterable[str]) -> Callable[[str], bool]:
    """A test for one Origin header value against every pattern (case-insensitive, as hosts are)."""
    parts = []
    for pattern in patterns:
        if pattern == "*":
            return lambda _origin: True
        # a trailing :* is any port, or none
        parts.append(_glob(pattern[:-2]) + "(?::[0-9]+)?" if pattern.endswith(":*") else _glob(pattern))
    if not parts:
        return lambda _origin: False
    compiled = re.compile("|".join(f"(?:{p})" for p in parts), re.IGNORECASE)
    return lambda origin: compiled.fullmatch(origin) is not None


def _glob(pattern: str) -> str:
    return "[^/]*".join(re.escape(piece) for piece in pattern.split("*"))


LOCAL_SUFFIXES = (".localhost", ".local", ".internal")  # names no public web site can hold


@functools.lru_cache(maxsize=256)  # a few Host values, asked once per request: a lookup, not a parse
def local_host(host_header: str) -> bool:
    """Whether a Host header addresses this machine in a way a web page cannot fake by DNS
    rebinding (its own name pointed at 127.0.0.1): an IP address, a name without a dot (localhost,
    a hosts-file alias), this machine's name, or a name under .localhost, .local or .internal.
    An empty Host (HTTP/1.0) passes."""
    host = host_name(host_header)
    if not host_header.startswith("[") and (
        "." not in host or host.endswith(LOCAL_SUFFIXES) or host == _machine_name()
    ):
        return True  # (a name without a dot, localhost included, is no public web site's)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def host_name(host_header: str) -> str:
    """The host a Host header names, without its port or IPv6 brackets, lowercased:
    "[::1]:8000" -> "::1", "LocalHost:8000" -> "localhost"."""
    if host_header.startswith("["):
        return host_header[1:host_header.find("]")].lower()
    return host_header.rsplit(":", 1)[0].lower().rstrip(".")


@functools.cache
def _machine_name() -> str:
    return socket.gethostname().lower()
