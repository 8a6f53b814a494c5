"""HTTP probes against one llama-server: `/health`, and the deeper `/slots` or one-token completion.

`/health` answers 503 "Loading model" while loading and 200 once ready, but stays 200 when
generation is wedged (llama.cpp#27388), so the deep probes exist for instances that want them.
Every probe returns a `ProbeResult`; none raises for network trouble. `/health` goes over a bare
asyncio connection: a `ProbeConnection` kept alive per child when probes come faster than
llama-server closes idle connections (5 s), otherwise a fresh one per probe (`raw_get`; both in
health.connection).
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from llama_orchestrator.health.connection import ProbeConnection, raw_get
from llama_orchestrator.health.result import ProbeResult


class HealthProber:
    """Probes over one shared aiohttp session (connections are not kept: llama-server closes idle ones at 5 s)."""

    def __init__(self, session: aiohttp.ClientSession | None = None) -> None:
        self._session = session
        self._owned = session is None

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, limit=0))
        return self._session

    async def close(self) -> None:
        if self._owned and self._session is not None:
            await self._session.close()
            self._session = None

    async def health(
        self, base_url: str, timeout_s: float, api_key: str | None = None, connection: ProbeConnection | None = None
    ) -> ProbeResult:
        """GET /health over a plain asyncio connection: `connection` when given (kept alive), else a fresh one.

        This runs for every instance every interval, so it skips aiohttp's client machinery: a
        bare HTTP/1.1 request costs about half the CPU per probe, and reusing a kept-alive
        connection (intervals below `KEEPALIVE_MAX_INTERVAL_S`) saves most of the rest, which is
        what keeps a daemon with 100 instances polled at 1 Hz within its budget.
        """
        if connection is not None:
            return await connection.get("/health", timeout_s, api_key)
        return await raw_get(base_url, "/health", timeout_s, api_key)

    async def slots(self, base_url: str, timeout_s: float, api_key: str | None = None) -> ProbeResult:
        result = await self._get(f"{base_url}/slots", timeout_s, api_key)
        if result.status == 501:  # started with --no-slots: nothing deeper to learn
            return ProbeResult(True, 501, "slots endpoint disabled", result.latency_s)
        return result

    async def slots_answer(self, base_url: str, timeout_s: float, api_key: str | None = None) -> bytes | None:
        """The body of a 200 answer to `/slots` (core.traffic_health.busy_slots reads it); None otherwise."""
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        session = await self._client()
        try:
            async with session.get(f"{base_url}/slots", headers=headers,
                                   timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
                return await response.read() if response.status == 200 else None
        except (TimeoutError, aiohttp.ClientError, OSError):
            return None

    async def post(
        self, base_url: str, path: str, body: object, timeout_s: float, api_key: str | None = None
    ) -> ProbeResult:
        """POST `body` as JSON to `path`: ok when the server answers 200."""
        return await self._request("POST", f"{base_url}{path}", timeout_s, api_key, body)

    async def _get(self, url: str, timeout_s: float, api_key: str | None) -> ProbeResult:
        return await self._request("GET", url, timeout_s, api_key, None)

    async def _request(
        self, method: str, url: str, timeout_s: float, api_key: str | None, body: object | None
    ) -> ProbeResult:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        started = time.monotonic()
        session = await self._client()
        try:
            async with session.request(
                method, url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as response:
                text = await response.text()
                elapsed = time.monotonic() - started
                if response.status == 200:
                    return ProbeResult(True, 200, "ok", elapsed)
                loading = response.status == 503 and "Loading model" in text
                detail = "loading model" if loading else f"HTTP {response.status}: {text[:120]}"
                return ProbeResult(False, response.status, detail, elapsed, loading=loading)
        except TimeoutError:
            elapsed = time.monotonic() - started
            return ProbeResult(False, None, f"no answer within {timeout_s:g} s", elapsed, timed_out=True)
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
            return ProbeResult(False, None, f"connection failed: {exc.__class__.__name__}", time.monotonic() - started)
