"""A real headless Chromium, driven over the DevTools protocol with aiohttp's websocket client.

    async with chromium(tmp_path) as page:        # skips the test when no Chromium is installed
        await page.goto("http://localhost:8080/")
        result = await page.evaluate("run()")     # a page function's promise, awaited, as JSON

scripts/setup installs Debian's `chromium` where it can (Linux, root, apt-get), so CI runs
these tests. Only a browser enforces CORS, so only a browser can show that a page may use the
gateway. The browser runs in its own process group, killed on the way out.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.procs import running
from tests.support.waiting import async_wait_until

BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "microsoft-edge")


def chromium_binary() -> str | None:
    return next((path for name in BINARIES if (path := shutil.which(name))), None)


class Page:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: object) -> dict[str, Any]:
        """Send one command and return its result (events that arrive meanwhile are dropped)."""
        ident = await self._send(method, params)
        return (await self._until(lambda m: m.get("id") == ident))["result"]

    async def goto(self, url: str) -> None:
        await self.call("Page.enable")
        await self._send("Page.navigate", {"url": url})
        await self._until(lambda m: m.get("method") == "Page.loadEventFired")

    async def evaluate(self, expression: str) -> Any:
        """The value of `expression` in the page, its promise awaited; AssertionError if it threw."""
        result = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    async def _send(self, method: str, params: dict[str, object]) -> int:
        ident = next(self._ids)
        await self.ws.send_json({"id": ident, "method": method, "params": params})
        return ident

    async def _until(self, wanted: Any) -> dict[str, Any]:
        async for message in self.ws:
            data: dict[str, Any] = message.json()
            if "error" in data:
                raise AssertionError(f"DevTools error: {data['error']}")
            if wanted(data):
                return data
        raise AssertionError("Chromium closed the DevTools connection")


@asynccontextmanager
async def chromium(tmp_path: Path) -> AsyncIterator[Page]:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("no Chromium installed (scripts/setup installs Debian's chromium where it can)")
    profile = tmp_path / "chromium-profile"
    cmd = [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           "--disable-extensions", "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"]
    log = tmp_path / "chromium.log"
    with running(cmd, None, log) as proc:
        port_file = profile / "DevToolsActivePort"  # "<port>\n<browser path>" once it listens

        def listening() -> list[str] | bool:
            if proc.poll() is not None:
                return True  # exited: fail below with its output, not after the whole timeout
            lines = port_file.read_text().split() if port_file.exists() else []
            return lines if len(lines) == 2 else False

        lines = await async_wait_until(listening, 60, message="Chromium's DevTools port")
        if proc.poll() is not None or not isinstance(lines, list):
            output = log.read_text(errors="replace")[-2000:]
            raise AssertionError(f"{binary} exited with {proc.returncode} before listening:\n{output}")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{lines[0]}/json/list") as resp:
                targets = await resp.json()
            url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            async with http.ws_connect(url, max_msg_size=0) as ws:
                yield Page(ws)
