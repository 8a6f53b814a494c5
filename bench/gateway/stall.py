"""Does health polling stall a stream? `python -m bench.gateway.stall [--instances N] [--streams K]`.

A real daemon (`llama-orch --home H daemon start --autostart`) supervises N fake llama-servers
(tests/bin, `FAKE_TOKEN_DELAY` paced tokens) probed every `health.interval_s` = 0.05 s, and serves
the gateway. One streamed chat completion at a time runs against three targets, interleaved:

    standalone  the same fake server started by hand, no daemon anywhere (the baseline)
    instance    the daemon's instance, straight to its port (the daemon probes it meanwhile)
    gateway     the daemon's gateway in front of that instance

For each target the gaps between consecutive chunks arriving at the client are collected; the
first gap of every stream is skipped (it holds the response headers' round trip). Reported:
p50 / p99 / max gap and the p99 difference to the standalone baseline. Results go to
bench/results/gateway-stall-<time>.json. Every process started here is stopped (daemon stop,
then SIGKILL by pid).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.gateway.__main__ import FAKE, PY, REPO, free_port, pct, process, wait_http
from llama_orchestrator.config.paths import HomePaths

LLAMA_ORCH = Path(sys.executable).parent / "llama-orch"
TOKEN_DELAY_S = 0.01
HEALTH = {"interval_s": 0.05, "timeout_s": 0.5, "failure_threshold": 3, "start_poll_s": 0.05,
          "start_timeout_s": 30.0}


def orch(home: Path, *args: str, timeout_s: float = 120) -> str:
    out = subprocess.run([str(LLAMA_ORCH), "--home", str(home), *args], capture_output=True, text=True,
                         timeout=timeout_s, check=False, stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise RuntimeError(f"llama-orch {' '.join(args)} -> {out.returncode}\n{out.stdout}\n{out.stderr}")
    return out.stdout


def write_home(home: Path, tmp: Path, gw_port: int, n: int) -> list[int]:
    HomePaths(home).ensure()
    (home / "orchestrator.json").write_text(json.dumps({"gateway": {"port": gw_port}}))
    binary = tmp / "fake-llama-server"
    binary.write_text(f'#!/bin/sh\nexec "{PY}" "{FAKE}" "$@"\n')
    binary.chmod(0o755)
    model = tmp / "m.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 16)
    ports = []
    for i in range(n):
        port = free_port()
        ports.append(port)
        config = {"name": f"fake{i}", "model": {"path": str(model), "parallel": 4}, "server": {"port": port},
                  "binary": str(binary), "env": {"FAKE_TOKEN_DELAY": str(TOKEN_DELAY_S)}, "health": HEALTH}
        cfg = HomePaths(home).instance_config(f"fake{i}")
        cfg.parent.mkdir(parents=True, exist_ok=True)
        cfg.write_text(json.dumps(config, indent=2))
    return ports


async def stream_gaps(session: aiohttp.ClientSession, url: str, model: str, tokens: int) -> list[float]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": tokens, "stream": True}
    arrivals: list[float] = []
    async with session.post(url, json=body) as resp:
        if resp.status != 200:
            raise RuntimeError(f"{url}: HTTP {resp.status} {await resp.text()}")
        async for _chunk in resp.content.iter_any():
            arrivals.append(time.perf_counter())
    return [b - a for a, b in itertools.pairwise(arrivals[1:])]


async def measure(targets: dict[str, str], model: str, streams: int, tokens: int) -> dict[str, list[float]]:
    gaps: dict[str, list[float]] = {t: [] for t in targets}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        for url in targets.values():  # warm every path once
            await stream_gaps(session, url, model, 5)
        for r in range(streams):
            order = list(targets)[r % len(targets):] + list(targets)[:r % len(targets)]
            for t in order:
                gaps[t] += await stream_gaps(session, targets[t], model, tokens)
    return gaps


def summary(gaps: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    base = pct(gaps["standalone"], 0.99)
    return {t: {"n": len(v), "p50_ms": pct(v, 0.5) * 1e3, "p99_ms": pct(v, 0.99) * 1e3, "max_ms": max(v) * 1e3,
                "p99_vs_standalone_ms": (pct(v, 0.99) - base) * 1e3} for t, v in gaps.items()}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway.stall")
    parser.add_argument("--instances", type=int, default=8, help="fake instances the daemon probes")
    parser.add_argument("--streams", type=int, default=6, help="streams per target")
    parser.add_argument("--tokens", type=int, default=200, help="tokens per stream")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-stall-") as tmp_s:
        tmp = Path(tmp_s)
        home = tmp / "home"
        gw_port = free_port()
        ports = write_home(home, tmp, gw_port, args.instances)
        solo_port = free_port()
        solo_cmd = [PY, str(FAKE), "--host", "127.0.0.1", "--port", str(solo_port), "-m", str(tmp / "m.gguf"),
                    "--alias", "fake0", "-np", "4"]
        env = {**os.environ, "FAKE_TOKEN_DELAY": str(TOKEN_DELAY_S)}
        daemon_pid: int | None = None
        try:
            orch(home, "daemon", "start", "--autostart")
            status = json.loads(orch(home, "ps", "--json"))
            daemon_pid = int(json.loads(orch(home, "daemon", "status", "--json")).get("pid") or 0) or None
            deadline = time.monotonic() + 60
            while sum(1 for s in status["instances"] if s["state"] == "ready") < args.instances:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"instances not ready: {status}")
                time.sleep(0.1)
                status = json.loads(orch(home, "ps", "--json"))
            with process(solo_cmd, tmp / "solo.log", env):
                wait_http(f"http://127.0.0.1:{solo_port}/health")
                path = "/v1/chat/completions"
                targets = {"standalone": f"http://127.0.0.1:{solo_port}{path}",
                           "instance": f"http://127.0.0.1:{ports[0]}{path}",
                           "gateway": f"http://127.0.0.1:{gw_port}{path}"}
                gaps = asyncio.run(measure(targets, "fake0", args.streams, args.tokens))
        finally:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                orch(home, "daemon", "stop", timeout_s=60)
            if daemon_pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(daemon_pid, signal.SIGKILL)
    result = {"machine": {"cores": os.cpu_count(), "load": os.getloadavg(), "time": time.strftime("%Y-%m-%dT%H:%M:%S")},
              "instances": args.instances, "health_interval_s": HEALTH["interval_s"], "token_delay_s": TOKEN_DELAY_S,
              "gaps": summary(gaps)}
    for t, v in result["gaps"].items():  # type: ignore[attr-defined]
        print(f"{t:11} gaps n={v['n']:5}  p50 {v['p50_ms']:6.2f} ms  p99 {v['p99_ms']:6.2f} ms  "
              f"max {v['max_ms']:6.2f} ms  p99 vs standalone {v['p99_vs_standalone_ms']:+.2f} ms")
    out = REPO / "bench" / "results" / f"gateway-stall-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
