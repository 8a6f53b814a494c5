"""OpenAI's and Ollama's JavaScript SDKs (tests/js/clients.mjs), run with Node against a gateway.

    out = await run_js_clients(tmp_path, gateway_url, key, slots_url)  # what each call gave, as JSON

scripts/setup installs the versions pinned in tests/js/package.json into the cache with npm and
exports LLAMA_ORCH_JS_CLIENTS (a plain `pytest` finds them in the cache too); a machine without
Node or npm skips these tests. The script is
copied beside those node_modules so that its imports resolve, and runs in its own session.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "js" / "clients.mjs"


def installed_clients() -> Path:
    """Where scripts/setup put them: LLAMA_ORCH_JS_CLIENTS, else the cache directory it uses."""
    if exported := os.environ.get("LLAMA_ORCH_JS_CLIENTS"):
        return Path(exported)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    cache = Path(os.environ.get("LLAMA_ORCH_CACHE") or Path(xdg) / "llama-orchestrator")
    key = hashlib.sha256((SCRIPT.parent / "package.json").read_bytes()).hexdigest()[:12]
    return cache / "js-clients" / key


async def run_js_clients(tmp_path: Path, *args: str, timeout_s: float = 120.0) -> dict[str, Any]:
    node = shutil.which("node")
    modules = installed_clients() / "node_modules"
    if not modules.is_dir() or node is None:
        pytest.skip("no Node.js or no JavaScript clients installed (scripts/setup installs them with npm)")
    work = tmp_path / "js-clients"
    work.mkdir()
    shutil.copy(SCRIPT, work / SCRIPT.name)
    (work / "node_modules").symlink_to(modules, target_is_directory=True)
    proc = await asyncio.create_subprocess_exec(
        node, str(work / SCRIPT.name), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{SCRIPT.name} did not finish within {timeout_s} s") from None
    assert proc.returncode == 0, f"{SCRIPT.name} exited {proc.returncode}:\n{err.decode(errors='replace')}"
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result
