"""A minimal aiohttp llama-server mock for proxy-cost benchmarks (performance reference section 5).

The stdlib fake in tests/bin writes each SSE chunk with separate small writes, so at c=1 every
stream pays ~40 ms of Nagle/delayed-ACK, which hides any proxy cost; this mock writes each event
in one `write` with TCP_NODELAY (aiohttp's default). `/slots` reports streams in progress.

    python -m bench.gateway.mock --port P
Body: `max_tokens` events (default 16); `mock_token_delay` seconds between events (default 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from aiohttp import web

BUSY = {"n": 0}


async def health(_r: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def slots(_r: web.Request) -> web.Response:
    return web.json_response([{"id": i, "is_processing": i < BUSY["n"]} for i in range(max(8, BUSY["n"]))])


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    n = int(body.get("max_tokens", 16))
    delay = float(body.get("mock_token_delay", 0))
    if not body.get("stream"):
        return web.json_response({"choices": [{"index": 0, "message": {"role": "assistant", "content": "x" * n}}]})
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    BUSY["n"] += 1
    try:
        created = int(time.time())
        for i in range(n):
            payload = {"choices": [{"finish_reason": None, "index": 0, "delta": {"content": " tok"}}],
                       "created": created, "id": "chatcmpl-mock", "model": "bench", "object": "chat.completion.chunk",
                       "seq": i}
            await resp.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
            if delay:
                await asyncio.sleep(delay)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
    finally:
        BUSY["n"] -= 1
    return resp


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    a = p.parse_args()
    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/slots", slots)
    app.router.add_post("/v1/chat/completions", chat)
    web.run_app(app, host="127.0.0.1", port=a.port, access_log=None, print=None, handler_cancellation=True)


if __name__ == "__main__":
    main()
