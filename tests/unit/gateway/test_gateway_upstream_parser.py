"""The lean upstream client's response parser: any split of a chunked body into reads gives the
body back whole, in order, with the end seen (the relay depends on it for every SSE event).
In wire mode (an SSE answer the gateway relays) it gives back chunked bytes: each piece whole
chunks, so the gateway can still append an error chunk of its own after any of them; a read of
one chunk as it came, a read of several as one chunk with all their data (as nginx re-frames)."""

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


def whole_chunks(piece: bytes) -> tuple[bytes, int, bool]:
    """(data, data chunks, ended) of a piece that must be whole chunks (AssertionError if not)."""
    data, count, pos = b"", 0, 0
    while pos < len(piece):
        end = piece.index(b"\r\n", pos)
        size = int(piece[pos:end].split(b";")[0], 16)
        if size == 0:
            assert piece.endswith(b"\r\n\r\n") and piece.find(b"\r\n\r\n", end) == len(piece) - 4, piece
            return data, count, True
        assert piece[end + 2 + size:end + 4 + size] == b"\r\n", f"a piece ends inside a chunk: {piece!r}"
        data += piece[end + 2:end + 2 + size]
        count += 1
        pos = end + 4 + size
    return data, count, False


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
def test_wire_mode_gives_whole_chunks_with_the_same_data_and_one_chunk_per_read(
    pieces: list[bytes], cuts: list[int], extension: bool
) -> None:
    body = chunked(pieces, extension)
    got, wire, ended = asyncio.run(parse_wire(split(HEAD + body, cuts)))
    assert wire and ended
    data, ends = b"", 0
    for piece in got:
        piece_data, count, last = whole_chunks(piece)
        assert count <= 1, f"a read's chunks were not joined into one: {piece!r}"
        data += piece_data
        ends += last
    assert data == b"".join(pieces) and ends == 1 and whole_chunks(got[-1])[2]


def test_a_read_of_several_chunks_leaves_as_one_and_a_read_of_one_as_it_came() -> None:
    events = [b"data: %d\n\n" % i for i in range(3)]
    several = chunked(events, extension=False)
    got, _, ended = asyncio.run(parse_wire([HEAD + several]))
    joined = b"".join(events)
    assert got == [b"%x\r\n%b\r\n0\r\n\r\n" % (len(joined), joined)] and ended
    one = b"9\r\ndata: 0\n\n\r\n"
    got, _, ended = asyncio.run(parse_wire([HEAD, one, one * 2, b"0\r\n\r\n"]))
    assert got == [one, b"12\r\ndata: 0\n\ndata: 0\n\n\r\n", b"0\r\n\r\n"] and ended


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
