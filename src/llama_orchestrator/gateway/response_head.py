"""An upstream's response head, read for the lean client (gateway.upstream): pure, no I/O.

    split_head(buffer)                         # (head, the bytes after it) once whole, else None
    head = parse_response_head(raw)            # MalformedHead if it is not one
    head.status, head.headers["content-length"], head.keep_alive   # header names lowercased
    body_framing(head, method="POST")          # ("length", 5)

A 1xx head has status 0 (an interim answer: the real head follows). The body is framed by
Transfer-Encoding: chunked, else has none (204, 304, an answer to HEAD), else Content-Length
bytes, else lasts until the server closes the connection.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

Framing = Literal["chunked", "none", "length", "close"]


MAX_HEAD = 64 * 1024


class MalformedHead(ValueError):
    """The head is not HTTP/1.x's; the message says what was wrong, for the connection's failure."""


@dataclass(frozen=True, slots=True)
class ResponseHead:
    status: int  # 0 for a 1xx interim answer
    headers: dict[str, str]  # shared by every answer with the same head (see parse_response_head): never change it
    keep_alive: bool  # HTTP/1.1 without Connection: close
    content_type: str = ""  # the media type of Content-Type, lowercased ("" without one)


def split_head(buf: bytearray) -> tuple[bytes, bytes] | None:
    """(the head, the bytes after it) once `buf` holds a whole head; None until it does."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > MAX_HEAD:
            raise MalformedHead("the upstream sent an oversized response head")
        return None
    return bytes(buf[:end]), bytes(buf[end + 4:])


@functools.lru_cache(maxsize=64)
def parse_response_head(head: bytes) -> ResponseHead:
    """The status line and headers of `head` (without its final blank line). A server answers a
    model's requests with the same head, bar a Date that changes once a second, so heads are
    remembered by their bytes: parsing one again was 7 % of the fast lane's Python per request."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise MalformedHead(f"the upstream sent a malformed status line {lines[0][:80]!r}")
    status = int(parts[1])
    headers: dict[str, str] = {}
    if status < 200:
        return ResponseHead(0, headers, True)
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    keep_alive = parts[0] != "HTTP/1.0" and "close" not in headers.get("connection", "").lower()
    content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return ResponseHead(status, headers, keep_alive, content_type)


def body_framing(head: ResponseHead, method: str) -> tuple[Framing, int]:
    """How the body after `head` ends, and its length when Content-Length gives it (else -1)."""
    headers = head.headers
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return "chunked", -1
    if head.status in (204, 304) or method == "HEAD":
        return "none", 0
    length = headers.get("content-length")
    if length is None:
        return "close", -1
    if not length.isdigit():
        raise MalformedHead(f"the upstream sent a bad Content-Length {length!r}")
    return "length", int(length)
