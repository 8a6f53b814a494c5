"""Which requests the front door's fast lane takes (gateway.http1): only the plainest, whole."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from llama_orchestrator.gateway import http1
from llama_orchestrator.gateway.http1 import (
    MAX_BODY,
    MAX_HEAD,
    NotPlain,
    plain_request,
    repeated_response_head,
    response_head,
)

PATHS = frozenset({"/v1/chat/completions"})
BODY = b'{"model":"m","stream":true}'


def request(*headers: str, line: str = "POST /v1/chat/completions HTTP/1.1", body: bytes = BODY,
            length: bool = True) -> bytearray:
    lines = [line, "Host: gw", "Content-Type: application/json", *headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return bytearray(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


def test_a_plain_request_is_taken_whole_with_lowercased_headers() -> None:
    buf = request("Authorization: Bearer k", "Connection: keep-alive") + b"POST /next"
    req = plain_request(buf, PATHS)
    assert req is not None
    assert (req.method, req.path, req.body) == ("POST", "/v1/chat/completions", BODY)
    assert req.headers["authorization"] == "Bearer k" and req.headers["content-type"] == "application/json"
    assert bytes(buf[len(req.raw):]) == b"POST /next"  # the pipelined next request is left alone


def test_an_incomplete_request_waits_for_more() -> None:
    whole = request()
    for cut in (0, 10, whole.index(b"\r\n\r\n"), len(whole) - 1):
        assert plain_request(whole[:cut], PATHS) is None


@pytest.mark.parametrize("buf", [
    request(line="GET /v1/chat/completions HTTP/1.1"),
    request(line="POST /v1/chat/completions?x=1 HTTP/1.1"),
    request(line="POST /v1/models HTTP/1.1"),
    request(line="POST /v1/chat/completions HTTP/1.0"),
    request(line="POST  /v1/chat/completions HTTP/1.1"),
    request("Transfer-Encoding: chunked", length=False),
    request("Expect: 100-continue"),
    request("Upgrade: h2c"),
    request("Connection: close"),
    request("Content-Type: text/plain"),  # repeated header
    request("X-Folded: a", " b"),  # obs-fold
    request("Bad Name: x"),
    request("X-Nul: a\x00b"),
    request("X-Bare-LF: a\nb"),
    request(length=False),
    request("Content-Length: +5", length=False),
    request("Content-Length: ²", length=False),
    request(f"Content-Length: {MAX_BODY + 1}", length=False),
    bytearray(b"POST /v1/chat/completions HTTP/1.1\r\nX: " + b"a" * (MAX_HEAD + 1)),
], ids=["get", "query", "other-path", "http10", "double-space", "chunked", "expect", "upgrade", "close",
        "repeated", "folded", "bad-name", "nul", "bare-lf", "no-length", "signed-length", "unicode-digit",
        "body-too-big", "head-too-big"])
def test_anything_but_the_plainest_request_goes_to_aiohttp(buf: bytearray) -> None:
    with pytest.raises(NotPlain):
        plain_request(buf, PATHS)


def test_response_head_has_status_line_headers_and_date() -> None:
    head = response_head(404, [("Content-Length", "0")])
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 404 Not Found" and lines[1] == "Content-Length: 0"
    assert lines[2].startswith("Date: ") and lines[2].endswith(" GMT") and head.endswith(b"\r\n\r\n")
    assert response_head(599, []).startswith(b"HTTP/1.1 599 Unknown\r\n")


def test_a_repeated_head_is_the_same_bytes_and_few_are_remembered() -> None:
    headers = (("Content-Type", "text/event-stream"), ("X-Llama-Orch-Instance", "one"))
    assert repeated_response_head(200, headers) == response_head(200, headers)
    assert repeated_response_head(200, headers) == response_head(200, headers)  # from memory
    assert repeated_response_head(500, headers).startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    for n in range(600):
        repeated_response_head(200, (("X-Llama-Orch-Instance", f"i{n}"),))
    assert http1._remembered_lines.cache_info().currsize == 256  # the memory stays small


def test_a_header_name_seen_before_still_needs_its_colon_and_an_odd_one_is_still_refused() -> None:
    assert plain_request(request("Authorization: Bearer k"), PATHS) is not None  # its name is remembered
    for line in ("Authorization", "Bad Name: x", "Bad Name: x"):  # twice: a refusal is not remembered
        with pytest.raises(NotPlain):
            plain_request(request(line), PATHS)


def line_by_line(buf: bytes) -> dict[str, str] | None:
    """The headers of a whole request as a plain reading line by line takes them (the oracle of the
    test below): None for a head the fast lane must not take."""
    head = buf[:buf.find(b"\r\n\r\n")].decode("latin-1")
    if any(c in head.replace("\r\n", "") for c in "\r\n\x00\x01\x1f\x7f"):
        return None
    headers: dict[str, str] = {}
    for line in head.split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or any(c not in TOKEN_CHARS for c in name):
            return None
        if name.lower() in headers or name.lower() in {"transfer-encoding", "expect", "upgrade", "origin"}:
            return None
        headers[name.lower()] = value.strip(" \t")
    return headers


TOKEN_CHARS = frozenset("!#$%&'*+.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-")
NAMES = ["X-A", "x-a", "X-B", "Accept", "Origin", "Expect", "Content-Type", "Bad Name", "", "é", " X", "X\x00"]
SEPARATORS = [":", ": ", ":\t", " :", "", ":  "]
VALUES = ["v", "v w", "", " v ", "\tv\t", "a:b", "é", "v\x7f", "v\rw", "v\nw", "v\r\n", "\r\n\r\nX: y"]
LINES = st.tuples(st.sampled_from(NAMES), st.sampled_from(SEPARATORS), st.sampled_from(VALUES)).map("".join)


@given(st.lists(LINES, max_size=6))
@settings(max_examples=500, deadline=None)
def test_the_headers_taken_are_those_a_line_by_line_reading_takes(lines: list[str]) -> None:
    buf = request(*lines)
    expected = line_by_line(bytes(buf))
    try:
        got = plain_request(buf, PATHS)
    except NotPlain:  # (an empty line ends the head early, before the Content-Length)
        assert expected is None or "content-length" not in expected
        return
    assert got is not None and got.headers == expected
