"""The lean upstream client's response parser: any split of a chunked body into reads gives the
body back whole, in order, with the end seen (the relay depends on it for every SSE event).
In wire mode (an SSE answer the gateway passes on as it came) it gives back the chunked bytes
themselves, each piece ending on a chunk boundary, so the gateway can still append an error
chunk of its own after any of them."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings, strategies as st

from llama_orchestrator.gateway.upstream import Response, UpstreamClosed

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunked(pieces: list[bytes], extension: bool) -> bytes:
    body = b"".join(b"%x%s\r\n%s\r\n" % (len(p), b";x=1" if extension else b"", p) for p in pieces if p)
    return body + b"0\r\n\r\n"


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    out, last = [], 0
    for point in [*points, len(data)]:
        out.append(data[last:point])
        last = point
    return [o for o in out if o]


async def parse(reads: list[bytes]) -> tuple[bytes, bool]:
    response = Response(pool=None, key=("127.0.0.1", 1))  # type: ignore[arg-type]
    for data in reads:
        response.data_received(data)
    body = await asyncio.wait_for(response.read(), 1)
    return body, response.at_eof()


def chunk_boundaries(wire: bytes) -> set[int]:
    """Offsets in a chunked body where a chunk ends (and the next size line starts)."""
    out, pos = {0}, 0
    while True:
        end = wire.index(b"\r\n", pos)
        size = int(wire[pos:end].split(b";")[0], 16)
        pos = end + 2 + size + 2
        out.add(pos)
        if size == 0:
            return out


async def parse_wire(reads: list[bytes]) -> tuple[list[bytes], bool, bool]:
    """(the pieces readany gave, in wire mode?, ended?), each read fed before the next readany."""
    response = Response(pool=None, key=("127.0.0.1", 1))  # type: ignore[arg-type]
    response._wire_wanted = True
    pieces = []
    for data in reads:
        response.data_received(data)
        if response._chunks or response.failure is not None:
            pieces.append(await asyncio.wait_for(response.readany(), 1))
    return pieces, response.wire, response.at_eof()


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(st.binary(min_size=0, max_size=300), max_size=12),
       cuts=st.lists(st.integers(0, 5000), max_size=20), extension=st.booleans())
def test_any_split_of_a_chunked_body_reads_back_whole(pieces: list[bytes], cuts: list[int], extension: bool) -> None:
    wire = HEAD + chunked(pieces, extension)
    body, ended = asyncio.run(parse(split(wire, cuts)))
    assert body == b"".join(pieces) and ended


@pytest.mark.parametrize("body", [b"5\r\nabcdefgh\r\n0\r\n\r\n", b"-3\r\nabc\r\n0\r\n\r\n"])
def test_a_chunk_that_lies_about_its_size_is_an_error(body: bytes) -> None:
    with pytest.raises(UpstreamClosed, match="malformed"):
        asyncio.run(parse([HEAD + body]))


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(st.binary(min_size=0, max_size=300), max_size=12),
       cuts=st.lists(st.integers(0, 5000), max_size=20), extension=st.booleans())
def test_wire_mode_gives_the_chunked_bytes_back_in_whole_chunks(
    pieces: list[bytes], cuts: list[int], extension: bool
) -> None:
    body = chunked(pieces, extension)
    got, wire, ended = asyncio.run(parse_wire(split(HEAD + body, cuts)))
    assert wire and ended
    assert b"".join(got) == body
    boundaries, offset = chunk_boundaries(body), 0
    for piece in got:
        offset += len(piece)
        assert offset in boundaries, f"a piece ends inside a chunk at {offset}"


def test_wire_mode_is_only_for_chunked_event_streams() -> None:
    json_head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    got, wire, ended = asyncio.run(parse_wire([json_head + b"2\r\n{}\r\n0\r\n\r\n"]))
    assert (got, wire, ended) == ([b"{}"], False, True)


def test_wire_mode_keeps_trailers_and_drops_the_socket_after_extra_bytes() -> None:
    body = b"3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"
    got, _, ended = asyncio.run(parse_wire([HEAD + body[:12], body[12:] + b"junk"]))
    assert b"".join(got) == body and ended


@pytest.mark.parametrize("body", [b"5\r\nabcdefgh\r\n0\r\n\r\n", b"-3\r\nabc\r\n0\r\n\r\n", b"zz\r\nabc\r\n"])
def test_wire_mode_refuses_a_chunk_that_lies_about_its_size(body: bytes) -> None:
    with pytest.raises(UpstreamClosed, match="malformed"):
        asyncio.run(parse_wire([HEAD + body]))
