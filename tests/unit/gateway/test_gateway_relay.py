"""The upstream connection relaying a stream's chunks to a client socket (`Response.relay_to`):
bytes that came before the relay started go first, reading pauses while the client's buffer is
full, and the end of the body ends the wait. Hand-written transports, no sockets."""

from __future__ import annotations

import asyncio

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
