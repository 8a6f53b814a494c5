"""The upstream connection relaying a stream's chunks to a client socket (`Response.relay_to`):
bytes that came before the relay started go first, reading pauses while the client's buffer is
full, and the end of the body ends the wait. Hand-written transports, no sockets."""

from __future__ import annotations

import asyncio
import itertools

from llama_orchestrator.gateway.upstream import Response, Timeouts

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class ClientSocket:
    """What the relay writes to: keeps the bytes, reports a fill level the test sets."""

    def __init__(self, high: int = 100) -> None:
        self.data = b""
        self.buffered = 0
        self.high = high
        self.closing = False

    def write(self, data: bytes) -> None:
        self.data += data

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (0, self.high)


class UpstreamSocket:
    def __init__(self) -> None:
        self.reading = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def write(self, data: bytes) -> None:
        pass


def streaming_response() -> tuple[Response, UpstreamSocket]:
    response = Response(pool=None, key=("127.0.0.1", 1))  # type: ignore[arg-type]
    upstream = UpstreamSocket()
    response.connection_made(upstream)  # type: ignore[arg-type]
    response._send("POST", b"", Timeouts(connect=1, read=5), wire_sse=True)
    return response, upstream


async def test_bytes_from_before_the_relay_go_first_then_each_read_goes_straight_through() -> None:
    response, _ = streaming_response()
    response.data_received(HEAD + chunk(b"data: 1\n\n"))
    response.data_received(chunk(b"data: 2\n\n"))  # arrived while the caller was still busy
    client = ClientSocket()
    response.relay_to(client)  # type: ignore[arg-type]
    assert client.data == chunk(b"data: 1\n\n") + chunk(b"data: 2\n\n")
    response.data_received(chunk(b"data: 3\n\n") + b"0\r\n\r\n")
    assert await asyncio.wait_for(response.relayed(), 1) == "eof"
    assert client.data.endswith(chunk(b"data: 3\n\n") + b"0\r\n\r\n")
    assert response.first_relayed_at is not None


async def test_a_full_client_buffer_pauses_reading_until_the_caller_resumes() -> None:
    response, upstream = streaming_response()
    response.data_received(HEAD)
    client = ClientSocket(high=100)
    response.relay_to(client)  # type: ignore[arg-type]
    client.buffered = 500  # the client stopped reading
    response.data_received(chunk(b"data: x\n\n"))
    assert await asyncio.wait_for(response.relayed(), 1) == "drain" and not upstream.reading
    client.buffered = 0
    response.resume_relay()
    assert upstream.reading
    response.data_received(b"0\r\n\r\n")
    assert await asyncio.wait_for(response.relayed(), 1) == "eof"


async def test_a_closed_client_is_reported_and_gets_nothing_more() -> None:
    response, _ = streaming_response()
    response.data_received(HEAD)
    client = ClientSocket()
    response.relay_to(client)  # type: ignore[arg-type]
    client.closing = True
    response.data_received(chunk(b"data: lost\n\n"))
    assert await asyncio.wait_for(response.relayed(), 1) == "gone" and client.data == b""


async def test_whole_events_and_reads_split_anywhere_relay_the_same_bytes() -> None:
    """Reads of one whole event take the relay's short path; any other read the general one."""
    events = [chunk(b"data: %d\n\n" % i) for i in range(5)]
    body = b"".join(events) + b"0\r\n\r\n"
    bounds = [sum(len(e) for e in events[:i]) for i in range(1, len(events) + 1)]
    for cut in range(1, len(body)):
        points = sorted({0, *bounds, cut, len(body)})
        response, _ = streaming_response()
        response.data_received(HEAD)
        client = ClientSocket()
        response.relay_to(client)  # type: ignore[arg-type]
        for start, end in itertools.pairwise(points):
            response.data_received(body[start:end])
        assert await asyncio.wait_for(response.relayed(), 1) == "eof", cut
        assert client.data == body, cut


async def test_on_the_short_path_a_full_client_buffer_pauses_and_a_closed_client_is_reported() -> None:
    response, upstream = streaming_response()
    response.data_received(HEAD)
    client = ClientSocket(high=100)
    response.relay_to(client)  # type: ignore[arg-type]
    response.data_received(chunk(b"data: 1\n\n"))  # the first event: the general path
    told: list[str] = []  # what the front door's exchange is woken for (Response.notify)
    response.notify = lambda: told.append(response.sink_state)
    response.data_received(chunk(b"data: 2\n\n"))  # one whole event: the short path
    assert told == []  # nothing to say: no wake-up per event
    client.buffered = 500
    response.data_received(chunk(b"data: 2\n\n"))
    assert told == ["drain"] and not upstream.reading
    assert await asyncio.wait_for(response.relayed(), 1) == "drain"
    client.buffered = 0
    response.resume_relay()
    client.closing = True
    response.data_received(chunk(b"data: 3\n\n"))
    assert told == ["drain", "gone"]
    assert await asyncio.wait_for(response.relayed(), 1) == "gone"
    assert client.data == chunk(b"data: 1\n\n") + chunk(b"data: 2\n\n") * 2


def test_one_chunk_is_exactly_one_whole_chunk_that_is_not_the_last() -> None:
    from llama_orchestrator.gateway.chunked import WireChunks

    wire = WireChunks()
    assert wire.one_chunk(chunk(b"data: x\n\n"))
    for data in (chunk(b"a") + chunk(b"b"), b"0\r\n\r\n", chunk(b"data: x\n\n")[:-1], b"5\r\nabcdeXY",
                 b"1000\r\n" + b"x" * 4096 + b"\r\n", b"\r\n"):
        assert not wire.one_chunk(data), data
    wire.feed(b"5\r\nab", lambda _piece: None)  # a chunk left incomplete: the next read is not whole alone
    assert not wire.one_chunk(b"cde\r\n")
