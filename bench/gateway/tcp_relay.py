"""A benchmark yardstick: the least a Python process in the middle can cost.

    python -m bench.gateway.tcp_relay --port P --upstream-port U

It parses nothing and routes nothing: each client connection gets its own upstream connection and
bytes are written on in `data_received`, on the gateway's event loop (uvloop here). No HTTP-aware
proxy written in Python can beat it, so `gateway/py-relay` in the bench table says how much of the
gap to direct (and to nginx) is the gateway's own work and how much is a Python process in the path.
Keep-alive clients only: it is not a proxy anyone should use.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import cast

from llama_orchestrator import eventloop, scheduling


class _Upstream(asyncio.Protocol):
    def __init__(self, client: asyncio.Transport) -> None:
        self.client = client

    def data_received(self, data: bytes) -> None:
        self.client.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


class _Client(asyncio.Protocol):
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.upstream: asyncio.Transport | None = None
        self.early: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            up, _ = await loop.create_connection(lambda: _Upstream(self.transport), "127.0.0.1", self.upstream_port)
        except OSError:
            self.transport.close()
            return
        self.upstream = cast(asyncio.Transport, up)
        for data in self.early:
            up.write(data)
        self.early.clear()

    def data_received(self, data: bytes) -> None:
        if self.upstream is None:
            self.early.append(data)
        else:
            self.upstream.write(data)

    def eof_received(self) -> bool | None:
        if self.upstream is not None and self.upstream.can_write_eof():
            self.upstream.write_eof()  # a half-close goes on, so a server reading to EOF answers
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None:
            self.upstream.close()


async def main(port: int, upstream_port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Client(upstream_port), "127.0.0.1", port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"tcp relay listening on 127.0.0.1:{port}", flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream-port", type=int, required=True)
    args = parser.parse_args()
    with scheduling.batch():  # as the daemon runs (llama_orchestrator.scheduling)
        eventloop.run(main(args.port, args.upstream_port))
