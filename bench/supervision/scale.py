"""B7 (M8): 100 fake instances at 1 Hz polling — daemon CPU, memory, and `llama-orch ps` latency.

The daemon starts on an empty home (so nothing autostarts), then 100 configs with
`health.interval_s = 1` are written and `llama-orch up` starts them all (its wall time is kept).
Daemon CPU is its own user+system time over the window. `ps` is timed as a user sees it — a fresh
`llama-orch ps` process, Python start-up included — interleaved with two baselines that show the
breakdown: `python -c pass` (interpreter start) and `python -c "import llama_orchestrator.cli"`
(interpreter + the CLI's imports). The control request alone (`/v1/status`, in-process) is timed
too. When `ps` misses its target (or with --profile) it is profiled with `-X importtime` and,
if installed, pyinstrument; the profiles are written next to the JSON results.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from bench.supervision.fixtures import REPO, Daemon, cli_path, cpu_over, instance_config, write_instance
from bench.supervision.report import Report, Row, median, p90, summary

CPU_TARGET_PCT = 3.0
PS_TARGET_MS = 300.0
IMPORT_LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def _wall(argv: list[str]) -> float:
    start = time.monotonic()
    subprocess.run(argv, check=True, capture_output=True)
    return (time.monotonic() - start) * 1000


def run(report: Report, daemon: Daemon, fake: str, model: str, base_port: int, n: int, window_s: float,
        runs: int, profile: bool, results_prefix: Path) -> None:
    names = [f"s{i:03d}" for i in range(n)]
    for i, name in enumerate(names):
        write_instance(daemon.paths, instance_config(name, binary=fake, model=model, port=base_port + i,
                                                     health={"interval_s": 1.0}))
    start = time.monotonic()
    up = daemon.cli("up", check=False, timeout=600)
    up_s = time.monotonic() - start
    daemon.track_children()
    states = [s.state for s in daemon.client.instances()]
    ready = states.count("ready")
    if up.returncode != 0 or ready != n:
        report.notes.append(f"scale: `up` exit {up.returncode}, {ready}/{n} ready: {up.stderr.strip()[-300:]}")
    report.raw["scale_up"] = {"instances": n, "ready": ready, "up_wall_s": up_s}
    report.add(Row(id="B7", metric=f"`llama-orch up` of {n} fake instances (wall)", measured=up_s, unit="s",
                   note=f"{ready}/{n} ready; informational, no target"))

    time.sleep(3.0)
    proc = daemon.process()
    cpu_s, elapsed = cpu_over(proc, window_s)
    pct = cpu_s / elapsed * 100
    with proc.oneshot():
        rss, threads, fds = proc.memory_info().rss / 2**20, proc.num_threads(), proc.num_fds()
    report.raw["scale_cpu"] = {"window_s": elapsed, "cpu_s": cpu_s, "percent_core": pct, "rss_mib": rss,
                               "threads": threads, "fds": fds, "interval_s": 1.0}
    report.add(Row(id="B7", metric=f"daemon CPU, {n} instances at 1 Hz polling", measured=pct, unit="%core",
                   target=f"≤ {CPU_TARGET_PCT:g} % of a core", ok=pct <= CPU_TARGET_PCT,
                   note=f"over {elapsed:.0f} s; RSS {rss:.1f} MiB, {threads} threads, {fds} fds; "
                        f"{cpu_s / elapsed / n * 1000:.2f} ms CPU per probe"))

    _ps(report, daemon, runs, profile, results_prefix)
    start = time.monotonic()
    daemon.cli("down", check=False, timeout=600)
    report.raw["scale_down_wall_s"] = time.monotonic() - start


def _ps(report: Report, daemon: Daemon, runs: int, profile: bool, results_prefix: Path) -> None:
    py = sys.executable
    ps = [cli_path(), "--home", str(daemon.paths.home), "ps"]
    arms = {"python -c pass": [py, "-c", "pass"],
            "import llama_orchestrator.cli": [py, "-c", "import llama_orchestrator.cli"],
            "llama-orch ps": ps}
    samples: dict[str, list[float]] = {k: [] for k in arms}
    samples["/v1/status request (in-process)"] = []
    _wall(ps)  # warm-up
    for _ in range(runs):
        for key, argv in arms.items():
            samples[key].append(_wall(argv))
        start = time.monotonic()
        daemon.client.status()
        samples["/v1/status request (in-process)"].append((time.monotonic() - start) * 1000)
    report.raw["ps_ms"] = {k: summary(v) | {"samples": v} for k, v in samples.items()}
    ps_med = median(samples["llama-orch ps"])
    base_med = median(samples["python -c pass"])
    imp_med = median(samples["import llama_orchestrator.cli"])
    req_med = median(samples["/v1/status request (in-process)"])
    report.add(Row(id="B7", metric=f"`llama-orch ps` wall, {len(daemon.client.instances())} instances, median",
                   measured=ps_med, unit="ms", baseline=imp_med, baseline_label="python + import cli",
                   vs_baseline=f"{ps_med - imp_med:+.0f} ms", target=f"≤ {PS_TARGET_MS:.0f} ms",
                   ok=ps_med <= PS_TARGET_MS,
                   note=f"p90 {p90(samples['llama-orch ps']):.0f} ms; breakdown (medians): interpreter "
                        f"{base_med:.0f} ms, CLI imports {imp_med - base_med:.0f} ms, rest {ps_med - imp_med:.0f} ms "
                        f"(of which /v1/status request {req_med:.0f} ms)"))
    if profile or ps_med > PS_TARGET_MS:
        report.raw["ps_profile"] = _profile_ps(ps, results_prefix)


def _profile_ps(ps: list[str], results_prefix: Path) -> dict[str, object]:
    """Where `ps` spends its time: import times grouped by package, and a pyinstrument profile."""
    argv = ps[1:]
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "from llama_orchestrator.cli import main; main()",
                          *argv], capture_output=True, text=True, cwd=REPO)
    by_package: dict[str, int] = defaultdict(int)
    by_module: list[tuple[int, int, str]] = []
    for line in out.stderr.splitlines():
        m = IMPORT_LINE.match(line)
        if not m:
            continue
        self_us, cum_us, name = int(m.group(1)), int(m.group(2)), m.group(4)
        top = name.split(".")[0]
        key = ".".join(name.split(".")[:2]) if top == "llama_orchestrator" else top
        by_package[key] += self_us
        by_module.append((self_us, cum_us, name))
    total_ms = sum(by_package.values()) / 1000
    packages = sorted(((v / 1000, k) for k, v in by_package.items()), reverse=True)[:15]
    modules = sorted(by_module, reverse=True)[:15]
    Path(f"{results_prefix}-ps-importtime.txt").write_text(out.stderr, encoding="utf-8")
    print(f"\n  `ps` import time {total_ms:.0f} ms (self time summed); top packages:")
    for ms, name in packages:
        print(f"    {ms:7.1f} ms  {name}")
    result: dict[str, object] = {
        "import_total_ms": total_ms,
        "top_packages_ms": [[n, round(ms, 1)] for ms, n in packages],
        "top_modules_self_ms": [[n, round(s / 1000, 1), round(c / 1000, 1)] for s, c, n in modules],
    }
    try:
        import pyinstrument  # noqa: F401
    except ImportError:
        result["pyinstrument"] = "not installed"
        return result
    text_path = Path(f"{results_prefix}-ps-pyinstrument.txt")
    subprocess.run([sys.executable, "-m", "pyinstrument", "-r", "text", "-o", str(text_path), "--interval", "0.0005",
                    "-m", "llama_orchestrator", *argv], capture_output=True, text=True, cwd=REPO)
    if text_path.exists():
        lines = text_path.read_text(encoding="utf-8").splitlines()
        result["pyinstrument_file"] = str(text_path)
        result["pyinstrument_head"] = lines[:60]
    return result
