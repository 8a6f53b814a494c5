"""Each instance's own `/metrics` (llama-server `--metrics`), fetched for the gateway's `/metrics`;
and any other route of an instance the gateway reads for an answer of its own (`instance_get`).

All instances at once, each with a short timeout: one wedged instance must not hold up the
scrape, and an instance that does not answer is left out (its gateway-side figures remain).
"""

from __future__ import annotations

import asyncio

from llama_orchestrator.core.routing import Upstream
from llama_orchestrator.errors import UpstreamError
from llama_orchestrator.gateway import upstream as upclient
from llama_orchestrator.gateway.pool import UpstreamPool

TIMEOUT_S = 2.0


async def child_metrics(pool: UpstreamPool, ups: list[Upstream]) -> list[tuple[Upstream, str]]:
    """(instance, its Prometheus text) for each of `ups` that answered 200 in time."""
    bodies = await asyncio.gather(*(instance_get(pool, u, "/metrics", TIMEOUT_S) for u in ups))
    return [(u, body.decode("utf-8", "replace")) for u, body in zip(ups, bodies, strict=True) if body is not None]


async def instance_get(pool: UpstreamPool, u: Upstream, route: str, timeout_s: float) -> bytes | None:
    """The body of `GET route` on the instance `u` (with its key), or None unless it answered
    200 within `timeout_s`."""
    headers = {"Authorization": f"Bearer {u.api_key}"} if u.api_key else {}
    try:
        host, port, prefix = upclient.address(u.base_url)
        resp = await pool.request("GET", host, port, prefix + route, headers, None,
                                  upclient.Timeouts(connect=timeout_s, total=timeout_s))
        try:
            return await resp.read() if resp.status == 200 else None
        finally:
            resp.close()
    except (UpstreamError, TimeoutError, OSError):
        return None
