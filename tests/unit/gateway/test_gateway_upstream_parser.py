"""The lean upstream client's response parser: any split of a chunked body into reads gives the
body back whole, in order, with the end seen (the relay depends on it for every SSE event)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(st.binary(min_size=0, max_size=300), max_size=12),
       cuts=st.lists(st.integers(0, 5000), max_size=20), extension=st.booleans())
def test_any_split_of_a_chunked_body_reads_back_whole(pieces: list[bytes], cuts: list[int], extension: bool) -> None:
    wire = HEAD + chunked(pieces, extension)
    body, ended = asyncio.run(parse(split(wire, cuts)))
    assert body == b"".join(pieces) and ended


def test_a_chunk_that_lies_about_its_size_is_an_error() -> None:
    wire = HEAD + b"5\r\nabcdefgh\r\n0\r\n\r\n"  # 5 announced, 8 sent
    with pytest.raises(UpstreamClosed, match="malformed"):
        asyncio.run(parse([wire]))
