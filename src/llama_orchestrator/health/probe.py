"""HTTP probes against one llama-server: `/health`, and the deeper `/slots` or one-token completion.

`/health` answers 503 "Loading model" while loading and 200 once ready, but stays 200 when
generation is wedged (llama.cpp#27388), so the deep probes exist for instances that want them.
Every probe returns a `ProbeResult`; none raises for network trouble.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    status: int | None
    detail: str
    latency_s: float
    loading: bool = False


class _GetProtocol(asyncio.Protocol):
    """Collect one Connection: close answer (capped at 64 KiB) without the streams layer's overhead."""

    def __init__(self, request: bytes, done: asyncio.Future[bytes]) -> None:
        self._request = request
        self._done = done
        self._chunks: list[bytes] = []
        self._size = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size >= 65536:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done.done():
            if exc is not None and not self._chunks:
                self._done.set_exception(exc)
            else:
                self._done.set_result(b"".join(self._chunks))


async def raw_get(base_url: str, path: str, timeout_s: float, api_key: str | None = None) -> ProbeResult:
    """One GET with Connection: close; the status line and at most 64 KiB of the answer are read."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    started = time.monotonic()
    auth = f"Authorization: Bearer {api_key}\r\n" if api_key else ""
    request = f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n{auth}Connection: close\r\n\r\n".encode("ascii")
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()
    transport: asyncio.BaseTransport | None = None
    try:
        async with asyncio.timeout(timeout_s):
            transport, _ = await loop.create_connection(lambda: _GetProtocol(request, done), host, port)
            data = await done
    except TimeoutError:
        return ProbeResult(False, None, f"no answer within {timeout_s:g} s", time.monotonic() - started)
    except OSError as exc:
        return ProbeResult(False, None, f"connection failed: {exc.strerror or exc.__class__.__name__}",
                           time.monotonic() - started)
    finally:
        if transport is not None:
            transport.close()
    elapsed = time.monotonic() - started
    head, _, body = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        return ProbeResult(False, None, "not an HTTP answer", elapsed)
    status = int(status_line[1])
    if status == 200:
        return ProbeResult(True, 200, "ok", elapsed)
    text = body.decode("utf-8", errors="replace")
    loading = status == 503 and "Loading model" in text
    detail = "loading model" if loading else f"HTTP {status}: {text[:120]}"
    return ProbeResult(False, status, detail, elapsed, loading=loading)


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

    async def health(self, base_url: str, timeout_s: float, api_key: str | None = None) -> ProbeResult:
        """GET /health over a plain asyncio connection.

        This runs for every instance every interval, so it skips aiohttp's client machinery: a
        bare HTTP/1.1 request with `Connection: close` costs about half the CPU per probe, which
        is what keeps a daemon with 100 instances polled at 1 Hz near its budget.
        """
        return await raw_get(base_url, "/health", timeout_s, api_key)

    async def slots(self, base_url: str, timeout_s: float, api_key: str | None = None) -> ProbeResult:
        result = await self._get(f"{base_url}/slots", timeout_s, api_key)
        if result.status == 501:  # started with --no-slots: nothing deeper to learn
            return ProbeResult(True, 501, "slots endpoint disabled", result.latency_s)
        return result

    async def completion(self, base_url: str, timeout_s: float, api_key: str | None = None) -> ProbeResult:
        body = {"prompt": "a", "n_predict": 1, "cache_prompt": False}
        return await self._request("POST", f"{base_url}/completion", timeout_s, api_key, body)

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
            return ProbeResult(False, None, f"no answer within {timeout_s:g} s", time.monotonic() - started)
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
            return ProbeResult(False, None, f"connection failed: {exc.__class__.__name__}", time.monotonic() - started)
