"""Each instance's own `/metrics` (llama-server `--metrics`), fetched for the gateway's `/metrics`.

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
    timeout = upclient.Timeouts(connect=TIMEOUT_S, total=TIMEOUT_S)

    async def fetch(u: Upstream) -> tuple[Upstream, str] | None:
        headers = {"Authorization": f"Bearer {u.api_key}"} if u.api_key else {}
        try:
            host, port, prefix = upclient.address(u.base_url)
            resp = await pool.request("GET", host, port, prefix + "/metrics", headers, None, timeout)
            try:
                if resp.status != 200:
                    return None
                return u, (await resp.read()).decode("utf-8", "replace")
            finally:
                resp.close()
        except (UpstreamError, TimeoutError):
            return None

    results = await asyncio.gather(*(fetch(u) for u in ups))
    return [r for r in results if r is not None]
