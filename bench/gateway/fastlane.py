"""`python -m bench.gateway.fastlane`: the Python one streamed request costs the gateway's fast lane,
with no socket and no other process in the way.

    .venv/bin/python -m bench.gateway.fastlane [--requests 10000] [--baseline /path/to/other/checkout]

A real `Gateway` (the bench's fixed directory, as `bench.gateway.serve` runs it) gets its client
connection and its one pooled upstream connection over fake transports, and the loop feeds them
the bytes the load generator sends and the aiohttp mock answers (16 events and `[DONE]`), then
times each request end to end: the front door's parse and routing, the request written upstream,
the answer's head, the relay, the metrics and the end. Two shapes of answer:
- `whole`: the answer in one read, head included, as at c=32 on the mock (1.27 reads per stream);
- `per-event`: one read per event, as a real llama-server's tokens come.

The best of 5 runs is reported in µs per request, and with `--baseline` the same for the other
checkout, each in its own process, side by side (the ratio is what to read). It is steady to about
1 % from run to run, where the streams/s of `bench.gateway` swing by ±10 %: use it to see a change
of a few µs in the gateway's own Python. It leaves out what the kernel and uvloop do per stream
(the socket calls, the event loop's wake-ups), about half the gateway's CPU per stream.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.gateway.__main__ import REPO

BODY = json.dumps({"model": "bench", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 16,
                   "stream": True}).encode()
REQUEST = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: */*\r\n"
           b"Accept-Encoding: gzip, deflate\r\nUser-Agent: Python/3.11 aiohttp/3.14.5\r\n"
           b"Content-Length: %d\r\nContent-Type: application/json\r\n\r\n%b" % (len(BODY), BODY))  # as aiohttp sends it


def answer_reads(shape: str) -> list[bytes]:
    """The mock's answer to REQUEST as it comes over the wire, split into reads."""
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
            b"Date: Thu, 03 Dec 2026 18:33:47 GMT\r\nServer: Python/3.11 aiohttp/3.14.5\r\n\r\n")
    events = [b"data: " + json.dumps({
        "choices": [{"finish_reason": None, "index": 0, "delta": {"content": " tok"}}], "created": 1796322827,
        "id": "chatcmpl-mock", "model": "bench", "object": "chat.completion.chunk", "seq": i}).encode() + b"\n\n"
        for i in range(16)] + [b"data: [DONE]\n\n"]
    chunks = [b"%x\r\n%b\r\n" % (len(e), e) for e in events] + [b"0\r\n\r\n"]
    if shape == "whole":
        return [head + b"".join(chunks)]
    return [head, *chunks[:-2], chunks[-2] + chunks[-1]]


class FakeTransport:
    """What the gateway calls on a socket's transport; writes only counted."""

    def __init__(self) -> None:
        self.written = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (16384, 65536)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        self.closing = True

    abort = close

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


async def measure(requests: int, shape: str) -> float:
    """Best of 5: µs per request (runs in the checkout on sys.path)."""
    from bench.gateway.__main__ import free_port
    from bench.gateway.serve import FixedDirectory
    from llama_orchestrator.config.orchestrator import GatewayConfig
    from llama_orchestrator.core.routing import Upstream
    from llama_orchestrator.core.states import InstanceState
    from llama_orchestrator.gateway.auth import Keyring
    from llama_orchestrator.gateway.frontdoor import FrontDoor
    from llama_orchestrator.gateway.server import Gateway
    from llama_orchestrator.gateway.upstream import Response

    ups = [Upstream("bench", "bench", "http://127.0.0.1:9", InstanceState.READY, True, False, False, None, 0, 0.0)]
    gw = Gateway(GatewayConfig(port=free_port(), queue_size=1024), FixedDirectory(ups), Keyring())
    await gw.start()
    lane, pool = gw._lane, gw._pool
    assert lane is not None and pool is not None
    conn = Response(pool, ("127.0.0.1", 9))
    conn.connection_made(FakeTransport())  # type: ignore[arg-type]
    pool.release(conn)
    client = FakeTransport()
    door = FrontDoor(lane)
    door.connection_made(client)  # type: ignore[arg-type]
    reads = answer_reads(shape)

    def one() -> None:
        door.data_received(REQUEST)
        exchange = door.exchange
        assert exchange is not None and exchange.up is not None, "the request did not take the fast lane"
        up = exchange.up
        for data in reads:
            up.data_received(data)
        assert door.exchange is None, "the exchange did not end"

    try:
        for _ in range(500):
            one()
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(requests):
                one()
            best = min(best, (time.perf_counter() - t0) / requests)
        assert lane.answered == 500 + 5 * requests and client.written > 0
        return best * 1e6
    finally:
        await gw.stop()


def run_in(checkout: Path, requests: int, shape: str) -> float:
    """`measure` (this file's) in a process of its own, importing the gateway from `checkout`."""
    env = dict(os.environ, PYTHONPATH=f"{checkout / 'src'}{os.pathsep}{checkout}")
    code = ("import runpy, sys; sys.path[:0] = [sys.argv[1] + '/src', sys.argv[1]]; "
            "from llama_orchestrator import eventloop; measure = runpy.run_path(sys.argv[2])['measure']; "
            "print(eventloop.run(measure(int(sys.argv[3]), sys.argv[4])))")
    out = subprocess.run([sys.executable, "-c", code, str(checkout), __file__, str(requests), shape], env=env,
                         cwd=checkout, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"fastlane in {checkout} failed:\n{out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway.fastlane", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--baseline", type=Path, help="another checkout, measured the same way in the same run")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    for shape in ("whole", "per-event"):
        row = results[shape] = {"this": run_in(REPO, args.requests, shape)}
        if args.baseline:
            row["baseline"] = run_in(args.baseline.resolve(), args.requests, shape)
        line = f"{shape:<10} {row['this']:7.2f} µs per request"
        if args.baseline:
            line += f"   baseline {row['baseline']:7.2f} µs   this/baseline {row['this'] / row['baseline']:.3f}"
        print(line, flush=True)
    out = REPO / "bench" / "results" / f"fastlane-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"requests": args.requests, "baseline": str(args.baseline or ""),
                               "us_per_request": results}, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
