"""`python -m bench.memory`: the memory-budget estimate (config.footprint) against what a real
llama-server holds, per model and context size.

    .venv/bin/python -m bench.memory [--model PATH ...] [--contexts 4096,16384,0]

For each model (the tiny test model, and every .gguf in the models cache unless --model is given)
and each context (0: the model's own), start the cached real llama-server alone, wait for
/health, read its resident size (RSS) and peak (VmHWM on Linux), stop it, and set the estimate
beside them. The ratio estimate/RSS says how far the budget's first guess is from what it then
measures: above 1 the budget evicts more than needed before the instance's first run, below 1
it could let memory run over. Results: bench/results/memory-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

from bench.supervision.fixtures import REPO, free_port_range, real_server_binary, write_tiny_model
from bench.supervision.report import machine_facts
from llama_orchestrator import gguf_file
from llama_orchestrator.config import footprint
from llama_orchestrator.config.models import InstanceConfig

MODELS_CACHE = Path.home() / ".cache" / "llama-orchestrator" / "models"


def measure(binary: str, model: Path, context: int) -> dict[str, object]:
    port = free_port_range(1)
    argv = [binary, "-m", str(model), "-c", str(context), "--port", str(port), "-t", "1", "--cache-ram", "0"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.1)  # polling a starting process: nothing to wait on but the port
        rss = psutil.Process(proc.pid).memory_info().rss
        peak = _vm_hwm(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
    config = InstanceConfig.model_validate(
        {"name": "m", "model": {"path": str(model), "context_size": context}, "server": {"port": port}})
    estimate = footprint.estimate(config, gguf_file.facts(model), gguf_file.size_and_mtime(model)[0])
    return {"model": model.name, "context": estimate.tokens or context, "rss_bytes": rss, "peak_bytes": peak,
            "estimate_bytes": estimate.total, "estimate": estimate.describe(), "ratio": estimate.total / rss}


def _vm_hwm(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", type=Path, default=None)
    parser.add_argument("--contexts", default="4096,16384,0")
    args = parser.parse_args()
    binary = real_server_binary()
    with tempfile.TemporaryDirectory() as scratch:
        models = args.model or [write_tiny_model(Path(scratch) / "tiny.gguf"),
                                *sorted(p for p in MODELS_CACHE.glob("*.gguf") if p.name != "tiny.gguf")]
        rows = [measure(binary, model, int(c)) for model in models for c in args.contexts.split(",")]
    print(f"{'model':<32} {'context':>7} {'RSS MiB':>8} {'peak MiB':>8} {'estimate MiB':>12} {'est/RSS':>7}")
    for r in rows:
        peak = "-" if r["peak_bytes"] is None else f"{r['peak_bytes'] / 2**20:.0f}"  # type: ignore[operator]
        print(f"{r['model']:<32} {r['context']:>7} {r['rss_bytes'] / 2**20:>8.0f} {peak:>8} "  # type: ignore[operator]
              f"{r['estimate_bytes'] / 2**20:>12.0f} {r['ratio']:>7.2f}")  # type: ignore[operator]
    out = REPO / "bench" / "results" / f"memory-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"facts": machine_facts(), "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
