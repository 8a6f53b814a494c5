"""Load generator, run as its own process: prints one JSON object with the measurements.

    python -m bench.gateway.load ttfb URL --count 300
    python -m bench.gateway.load throughput URL --concurrency 32 --seconds 3 --max-count 20000
    python -m bench.gateway.load cancel URL --slots-url URL --count 10
    python -m bench.gateway.load gaps URL --count 20 --body '{... "mock_token_delay": 0.03}'

Every request is a streaming chat completion; the timer is the client's (performance pitfall 8).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import aiohttp

BODY = {"model": "bench", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 16, "stream": True}


async def post(session: aiohttp.ClientSession, url: str, body: dict[str, object]) -> aiohttp.ClientResponse:
    try:
        return await session.post(url, json=body)
    except aiohttp.ClientConnectorError:
        raise
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
        # llama-server closes kept-alive sockets without notice; a careful client (and the
        # gateway) sends again once on a fresh connection, so every target gets the same courtesy
        return await session.post(url, json=body)


async def one_stream(session: aiohttp.ClientSession, url: str, body: dict[str, object]) -> tuple[float, int]:
    """(TTFB seconds, SSE events) of one streamed completion; raises on a non-200 answer."""
    t0 = time.perf_counter()
    async with await post(session, url, body) as resp:
        if resp.status != 200:
            detail = (await resp.read())[:160].decode(errors="replace")
            raise RuntimeError(f"HTTP {resp.status} {detail}")
        ttfb: float | None = None
        events = 0
        last = b""
        async for chunk in resp.content.iter_any():
            if ttfb is None:
                ttfb = time.perf_counter() - t0
            # an event ends with a blank line; its two newlines may arrive in different reads
            events += chunk.count(b"\n\n") + (last == b"\n" and chunk[:1] == b"\n")
            last = chunk[-1:]
    return (ttfb or 0.0), events


def session(limit: int = 0) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit, keepalive_timeout=3.0),
                                 timeout=aiohttp.ClientTimeout(total=60))


async def ttfb(url: str, count: int, body: dict[str, object]) -> dict[str, object]:
    out: list[float] = []
    events: list[int] = []
    errors = 0
    async with session() as s:
        await one_stream(s, url, body)  # warm the connection
        for _ in range(count):
            try:
                t, n = await one_stream(s, url, body)
                out.append(t)
                events.append(n)
            except (aiohttp.ClientError, RuntimeError, TimeoutError):
                errors += 1
    return {"ttfb_s": out, "events": sorted(set(events)), "errors": errors}


async def throughput(url: str, concurrency: int, seconds: float, max_count: int,
                     body: dict[str, object]) -> dict[str, object]:
    done = errors = 0
    events: set[int] = set()
    kinds: dict[str, int] = {}
    deadline = time.perf_counter() + seconds
    started = 0

    async def worker(s: aiohttp.ClientSession) -> None:
        nonlocal done, errors, started
        while time.perf_counter() < deadline and started < max_count:
            started += 1
            try:
                _, n = await one_stream(s, url, body)
                done += 1
                events.add(n)
            except (aiohttp.ClientError, RuntimeError, TimeoutError) as exc:
                errors += 1
                kind = str(exc) if isinstance(exc, RuntimeError) else type(exc).__name__
                kinds[kind] = kinds.get(kind, 0) + 1

    async with session() as s:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(s) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return {"completed": done, "errors": errors, "error_kinds": kinds, "elapsed_s": elapsed,
            "streams_per_s": done / elapsed, "events": sorted(events)}


async def gaps(url: str, count: int, body: dict[str, object]) -> dict[str, object]:
    """Inter-chunk gaps of paced streams, one after another: the time between consecutive reads
    that carry an event, as the client sees them (M5: a relay must not hold or batch events)."""
    out: list[float] = []
    async with session() as s:
        await one_stream(s, url, body)  # warm the connection
        for _ in range(count):
            async with await post(s, url, body) as resp:
                last: float | None = None
                async for chunk in resp.content.iter_any():
                    now = time.perf_counter()
                    if b"\n\n" in chunk:
                        if last is not None:
                            out.append(now - last)
                        last = now
    return {"gaps_s": out}


async def cancel(url: str, slots_url: str, count: int, body: dict[str, object]) -> dict[str, object]:
    """Abort after the 5th event; time until the upstream's /slots shows every slot idle."""
    lat: list[float] = []
    async with session() as s, aiohttp.ClientSession() as probe:
        for _ in range(count):
            resp = await s.post(url, json=body)
            seen = 0
            while seen < 5:
                seen += (await resp.content.readany()).count(b"\n\n")
            resp.close()
            t0 = time.perf_counter()
            while True:
                async with probe.get(slots_url) as r:
                    slots = await r.json()
                if not any(x["is_processing"] for x in slots):
                    break
                if time.perf_counter() - t0 > 10:
                    break
                await asyncio.sleep(0.002)
            lat.append(time.perf_counter() - t0)
    return {"cancel_s": lat}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["ttfb", "throughput", "cancel", "gaps"])
    p.add_argument("url")
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--max-count", type=int, default=50000)
    p.add_argument("--slots-url", default="")
    p.add_argument("--body", default="")
    a = p.parse_args()
    body = json.loads(a.body) if a.body else BODY
    if a.mode == "ttfb":
        result = asyncio.run(ttfb(a.url, a.count, body))
    elif a.mode == "gaps":
        result = asyncio.run(gaps(a.url, a.count, body))
    elif a.mode == "throughput":
        result = asyncio.run(throughput(a.url, a.concurrency, a.seconds, a.max_count, body))
    else:
        result = asyncio.run(cancel(a.url, a.slots_url, a.count, body))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
