"""Reading an upstream's response head (gateway.response_head): status, headers, keep-alive, body framing."""

from __future__ import annotations

import pytest

from llama_orchestrator.gateway.response_head import (
    MAX_HEAD,
    MalformedHead,
    body_framing,
    parse_response_head,
    split_head,
)


def test_split_waits_for_the_whole_head_and_keeps_what_follows() -> None:
    assert split_head(bytearray(b"HTTP/1.1 200 OK\r\nA: b\r\n")) is None
    assert split_head(bytearray(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\ndata: x")) == (b"HTTP/1.1 200 OK\r\nA: b", b"data: x")
    with pytest.raises(MalformedHead, match="oversized response head"):
        split_head(bytearray(b"x" * (MAX_HEAD + 1)))


def test_status_headers_and_keep_alive() -> None:
    head = parse_response_head(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json; charset=utf-8"
                               b"\r\nX-Odd:  spaced \r\nno colon line")
    assert (head.status, head.keep_alive, head.content_type) == (500, True, "application/json")
    assert head.headers == {"content-type": "application/json; charset=utf-8", "x-odd": "spaced"}
    assert not parse_response_head(b"HTTP/1.0 200 OK").keep_alive
    assert not parse_response_head(b"HTTP/1.1 200 OK\r\nConnection: Close").keep_alive
    assert parse_response_head(b"HTTP/1.1 100 Continue").status == 0  # interim: the real head follows


def test_heads_are_remembered_by_their_bytes_and_the_memory_stays_small() -> None:
    # a server sends each model's requests the same head (bar a Date changing once a second): parse it once
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked"
    assert parse_response_head(raw) is parse_response_head(bytes(bytearray(raw)))
    for second in range(200):
        parse_response_head(raw + b"\r\nDate: %d" % second)
    assert parse_response_head.cache_info().currsize == 64  # the memory stays small
    with pytest.raises(MalformedHead):  # a bad head is not remembered as good
        parse_response_head(b"HTTP/1.1 abc")
    with pytest.raises(MalformedHead):
        parse_response_head(b"HTTP/1.1 abc")


@pytest.mark.parametrize("line", [b"HTTP/2 200 OK", b"ICY 200 OK", b"HTTP/1.1 abc", b"garbage"])
def test_a_status_line_that_is_not_http_1(line: bytes) -> None:
    with pytest.raises(MalformedHead, match="malformed status line"):
        parse_response_head(line)


@pytest.mark.parametrize(("head", "method", "framing"), [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9", "POST", ("chunked", -1)),
    (b"HTTP/1.1 204 No Content", "POST", ("none", 0)),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 12", "HEAD", ("none", 0)),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 12", "GET", ("length", 12)),
    (b"HTTP/1.1 200 OK", "GET", ("close", -1)),
])
def test_how_the_body_ends(head: bytes, method: str, framing: tuple[str, int]) -> None:
    assert body_framing(parse_response_head(head), method) == framing


def test_a_bad_content_length() -> None:
    with pytest.raises(MalformedHead, match="bad Content-Length '-1'"):
        body_framing(parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: -1"), "GET")
