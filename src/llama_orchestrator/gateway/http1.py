"""The little HTTP/1.1 the gateway's front door speaks itself (gateway.frontdoor).

    req = plain_request(buffer, paths)   # PlainRequest, or None while incomplete
    # raises NotPlain for anything but the plainest request: aiohttp serves those
    head = response_head(200, [("Content-Type", "text/event-stream"), ...])
    head = repeated_response_head(200, (("Content-Type", "text/event-stream"), ...))  # lines remembered

Only the plainest form of an inference request qualifies: `POST <path> HTTP/1.1` with `path`
exactly one of `paths` (no query), a Content-Length body of at most MAX_BODY bytes, and none of
Transfer-Encoding, Expect, Upgrade, Origin, a `Connection` other than keep-alive, a repeated header,
a folded line, a header name that is not a token or a control character. Every other request (and every malformed one)
is NotPlain, and aiohttp, with all its checks, answers it. What this module accepts, aiohttp
would accept too: the fast lane never answers something aiohttp would refuse.
"""

from __future__ import annotations

import email.utils
import functools
import http
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

MAX_HEAD = 16 * 1024
MAX_BODY = 8 * 1024 * 1024  # larger bodies go through aiohttp, which reads them as they come
_BARRED = frozenset({"transfer-encoding", "expect", "upgrade", "origin"})  # origin: a browser (gateway.cors)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # in a head with its CRLFs taken out
_NOT_TOKEN = re.compile(r"[^!#$%&'*+.^_`|~0-9A-Za-z-]")


_TOKENS: set[str] = set()  # header names already found to be tokens (clients send the same few)


def _token(name: str) -> bool:
    """Whether `name` is an HTTP token (remembered: a regex search per header was the parser's
    largest cost)."""
    if not name or _NOT_TOKEN.search(name):
        return False
    if len(_TOKENS) < 512:
        _TOKENS.add(name)
    return True


class NotPlain(Exception):
    """The request is not one the fast lane serves (aiohttp does)."""


@dataclass(slots=True)
class PlainRequest:
    """One request the fast lane serves; never changed once parsed (not frozen: see core.routing.Upstream)."""

    method: str
    path: str
    headers: dict[str, str]  # names lowercased
    raw: bytes  # the request as received, head and body (handed to aiohttp if the lane cannot serve it)
    body_at: int  # where the body starts in `raw`

    @property
    def body(self) -> bytes:
        return self.raw[self.body_at:]


def plain_request(buf: bytearray, paths: frozenset[str]) -> PlainRequest | None:
    """The request at the start of `buf` if it is whole; None while more bytes are needed."""
    end = buf.find(b"\r\n\r\n")
    if end < 0 or end > MAX_HEAD:
        if len(buf) > MAX_HEAD:
            raise NotPlain("oversized head")
        return None
    head = buf[:end].decode("latin-1")
    if _CONTROL.search(head.replace("\r\n", "")):
        raise NotPlain("control character in the head")
    lines = head.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[0] != "POST" or parts[2] != "HTTP/1.1" or parts[1] not in paths:
        raise NotPlain("not a plain POST to an inference path")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or (name not in _TOKENS and not _token(name)):
            raise NotPlain("unusual header line")
        key = name.lower()
        if key in headers or key in _BARRED:
            raise NotPlain(f"header {name}")
        headers[key] = value.strip(" \t")
    if headers.get("connection", "keep-alive").lower() != "keep-alive":
        raise NotPlain("Connection")
    length = headers.get("content-length", "")
    if not (length.isascii() and length.isdigit()) or int(length) > MAX_BODY:
        raise NotPlain("no usable Content-Length")
    total = end + 4 + int(length)
    if len(buf) < total:
        return None
    return PlainRequest(parts[0], parts[1], headers, bytes(buf[:total]), end + 4)


def response_head(status: int, headers: Iterable[tuple[str, str]]) -> bytes:
    """Status line, the headers given, and a Date header (as aiohttp sends one)."""
    return _lines(status, headers) + _date_line()


def repeated_response_head(status: int, headers: tuple[tuple[str, str], ...]) -> bytes:
    """`response_head` for a head sent again and again (an instance's SSE answers): its lines are
    remembered (a few hundred at most), only the Date is added each time."""
    return _remembered_lines(status, headers) + _date_line()


def _lines(status: int, headers: Iterable[tuple[str, str]]) -> bytes:
    """The status line and header lines, each ending in CRLF."""
    reason = _REASONS.get(status, "Unknown")
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{name}: {value}" for name, value in headers)]
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


_remembered_lines = functools.lru_cache(maxsize=256)(_lines)
_REASONS = {s.value: s.phrase for s in http.HTTPStatus}  # (an enum lookup per answer cost a µs)
_date_cache: tuple[int, bytes] = (0, b"")


def _date_line() -> bytes:
    """The Date header line and the blank line that ends a head (the date made once a second)."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, f"Date: {email.utils.formatdate(now, usegmt=True)}\r\n\r\n".encode("latin-1"))
    return _date_cache[1]
