"""Run the gateway benchmarks: `python -m bench.gateway [--quick] [--skip-real] [--skip-litellm]`.

Upstreams: the fake llama-server (tests/bin, zero token delay) and the real llama-server with the
tiny model. Targets per upstream: direct, this gateway (its own process), nginx (1 worker) and
LiteLLM proxy (1 uvicorn worker, bench/gateway/litellm_proxy.py) when its venv exists. Load comes
from bench/gateway/load.py in its own process. Results go to bench/results/gateway-<time>.json and
a table of ratios is printed (gateway/direct, gateway/nginx, gateway/litellm).

LiteLLM is installed from PyPI into its own venv (~/.cache/llama-orchestrator/bench-litellm/venv),
never into .venv: `python -m bench.gateway --install-litellm` creates it and exits. Without it the
LiteLLM target is skipped with a note. LiteLLM adds one SSE event of its own per stream where the
upstream sends no finish_reason chunk (the mock), so its event count is reported apart.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil

from bench.gateway import litellm_proxy, load as load_mod, nginx

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
FAKE = REPO / "tests" / "bin" / "fake_llama_server.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float = 60, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited ({proc.returncode}) before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer 200 within {timeout_s}s")


# How the servers are started (--sched). "own": each in its own session, as the daemon starts each
# llama-server and as a client app runs apart from the daemon; Linux's autogroup scheduler then
# shares the cores between them session by session. "shared": each leads its own process group
# (which stop_group ends) but stays in the benchmark's session, so the scheduler sees every
# process, the load generator's too, as one group. On the aiohttp mock at c=32 the median
# gateway/nginx ratio of a round was 0.81 in "own" and 1.08 in "shared" (see the README).
SCHED = {"own": True}


@contextlib.contextmanager
def process(cmd: list[str], log: Path, env: dict[str, str] | None = None,
            cwd: Path = REPO) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=cwd, start_new_session=SCHED["own"],
                                process_group=None if SCHED["own"] else 0)
    try:
        yield proc
    finally:
        stop_group(proc, signal.SIGTERM)


def autogroup() -> str:
    """Whether Linux schedules by session here ("1", "0"; "" elsewhere)."""
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip()
    except OSError:
        return ""


def stop_group(proc: subprocess.Popen[bytes], first: signal.Signals) -> None:
    """Send `first` to the process group we started, then SIGKILL after 5 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, first)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def tree_cpu_s(pid: int) -> tuple[float, float]:
    """CPU seconds (user, system) used so far by `pid` and its live descendants (nginx workers)."""
    user = system = 0.0
    try:
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                user, system = user + times.user, system + times.system
    except psutil.Error:
        pass
    return user, system


CPU_KINDS = ("proxy", "proxy_user", "upstream", "load")  # the proxy's user-space share apart: nginx spends
# most of its time in the kernel's socket calls, a Python proxy in the interpreter


def cpu_now(proxy_pid: int | None, upstream_pid: int) -> tuple[float, ...]:
    """CPU seconds so far, in CPU_KINDS' order (direct has no proxy: 0)."""
    user, system = tree_cpu_s(proxy_pid) if proxy_pid is not None else (0.0, 0.0)
    return user + system, user, sum(tree_cpu_s(upstream_pid)), children_cpu_s()


def children_cpu_s() -> float:
    """CPU seconds of this process's reaped children so far: the load generator runs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load(*args: str) -> dict[str, object]:
    out = subprocess.run([PY, "-m", "bench.gateway.load", *args], cwd=REPO, capture_output=True, text=True,
                         check=True, timeout=300)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def llama_server_bin() -> str:
    out = subprocess.run([str(REPO / "scripts" / "build-llama-server")], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def round_order(targets: dict[str, str], r: int) -> list[str]:
    """The targets in the order round `r` measures them: each round starts with the next one, so
    drift on the shared cores does not always favour the same target."""
    names = list(targets)
    k = r % len(names)
    return names[k:] + names[:k]


def tiny_model(tmp: Path) -> Path:
    sys.path.insert(0, str(REPO))
    from tests.support.tiny_model import write_tiny_model
    return write_tiny_model(tmp / "tiny.gguf")


def run_suite(label: str, upstream_cmd: list[str], up_port: int, tmp: Path, quick: bool,
              ladder: list[int], cancel_body: dict[str, object], env: dict[str, str] | None,
              ttfb_count: int, seconds: float, body: dict[str, object] | None = None,
              baseline: Path | None = None, litellm: bool = False,
              paced_body: dict[str, object] | None = None, relay: bool = False,
              rounds: int = 3) -> dict[str, object]:
    """Every measurement for one upstream kind, across direct / gateway / gateway on asyncio's loop / nginx
    (/ LiteLLM proxy).

    `body` is the streamed request every target gets (default: load.BODY); a real server needs
    `ignore_eos` so that every stream has the same number of events whatever the model says.
    `relay` adds `py-relay` (bench.gateway.tcp_relay), the floor for any proxy written in Python;
    keep-alive upstreams only (llama-server closes its socket after each stream, which it passes on).
    """
    result: dict[str, object] = {"label": label}
    slug = label.split(" ")[0]
    gw_port, uv_port, nx_port, base_port, ll_port, rl_port = (free_port() for _ in range(6))
    body_args = ["--body", json.dumps(body)] if body else []
    pids: dict[str, int] = {}  # target -> the proxy's process (CPU accounting)
    with contextlib.ExitStack() as stack:
        up_pid = stack.enter_context(process(upstream_cmd, tmp / f"{slug}-upstream.log", env)).pid
        wait_http(f"http://127.0.0.1:{up_port}/health")
        ll_proc = None
        if litellm:  # slow to boot (~7 s): started first, waited for last
            ll_cmd, ll_env = litellm_proxy.command(tmp / f"{slug}-litellm", ll_port, up_port)
            ll_proc = stack.enter_context(process(ll_cmd, tmp / f"{slug}-litellm.log", ll_env,
                                                  cwd=tmp / f"{slug}-litellm"))
        pids["gateway"] = stack.enter_context(process(
            [PY, "-m", "bench.gateway.serve", "--port", str(gw_port),
             "--upstream", f"bench=bench=http://127.0.0.1:{up_port}"], tmp / f"{slug}-gateway.log")).pid
        wait_http(f"http://127.0.0.1:{gw_port}/health")
        targets = {"direct": f"http://127.0.0.1:{up_port}", "gateway": f"http://127.0.0.1:{gw_port}"}
        # the same gateway on asyncio's own event loop: what Windows runs (no uvloop there)
        pids["gw-asyncio"] = stack.enter_context(process(
            [PY, "-m", "bench.gateway.serve", "--port", str(uv_port), "--loop", "asyncio",
             "--upstream", f"bench=bench=http://127.0.0.1:{up_port}"], tmp / f"{slug}-gateway-asyncio.log")).pid
        wait_http(f"http://127.0.0.1:{uv_port}/health")
        targets["gw-asyncio"] = f"http://127.0.0.1:{uv_port}"
        if baseline is not None:  # the gateway of another checkout, e.g. before a change
            stack.enter_context(process(
                [PY, "-m", "bench.gateway.serve", "--port", str(base_port),
                 "--upstream", f"bench=bench=http://127.0.0.1:{up_port}"], tmp / f"{slug}-gateway-baseline.log",
                {**os.environ, "PYTHONPATH": f"{baseline / 'src'}{os.pathsep}{baseline}"}, cwd=baseline))
            wait_http(f"http://127.0.0.1:{base_port}/health")
            targets["gw-baseline"] = f"http://127.0.0.1:{base_port}"
        if relay:
            pids["py-relay"] = stack.enter_context(process(
                [PY, "-m", "bench.gateway.tcp_relay", "--port", str(rl_port), "--upstream-port", str(up_port)],
                tmp / f"{slug}-relay.log")).pid
            wait_http(f"http://127.0.0.1:{rl_port}/health")
            targets["py-relay"] = f"http://127.0.0.1:{rl_port}"
        if nginx.available():
            pids["nginx"] = stack.enter_context(_nginx(tmp / f"{slug}-nginx", nx_port, up_port))
            wait_http(f"http://127.0.0.1:{nx_port}/health")
            targets["nginx"] = f"http://127.0.0.1:{nx_port}"
        if ll_proc is not None:
            try:
                wait_http(f"http://127.0.0.1:{ll_port}/health/liveliness", 180, ll_proc)
            except RuntimeError as exc:
                tail = (tmp / f"{slug}-litellm.log").read_text(errors="replace")[-1500:]
                raise RuntimeError(f"LiteLLM proxy did not start: {exc}\n{tail}") from exc
            targets["litellm"] = f"http://127.0.0.1:{ll_port}"
            pids["litellm"] = ll_proc.pid
        path = "/v1/chat/completions"

        # B3: TTFB at c=1, interleaved rounds
        ttfb_rounds = 3
        ttfb: dict[str, list[float]] = {t: [] for t in targets}
        events: dict[str, list[int]] = {t: [] for t in targets}
        for r in range(ttfb_rounds):
            order = round_order(targets, r)
            for t in order:
                res = load("ttfb", targets[t] + path, "--count", str(ttfb_count // ttfb_rounds), *body_args)
                ttfb[t] += res["ttfb_s"]  # type: ignore[arg-type]
                events[t] += res["events"]  # type: ignore[arg-type]
        result["ttfb"] = {t: {"p50_ms": pct(v, 0.5) * 1e3, "p99_ms": pct(v, 0.99) * 1e3, "n": len(v)}
                          for t, v in ttfb.items()}
        result["events"] = {t: sorted(set(v)) for t, v in events.items()}
        # LiteLLM re-chunks (it adds a finish_reason chunk when the upstream sends none): compared apart
        ev = {t: tuple(v) for t, v in result["events"].items() if t != "litellm"}  # type: ignore[attr-defined]
        result["events_identical"] = len(set(ev.values())) == 1
        if "litellm" in events:
            ll_ev, d_ev = sorted(set(events["litellm"])), sorted(set(events["direct"]))
            result["litellm_events_note"] = (
                "same SSE event count as direct" if ll_ev == d_ev else
                f"LiteLLM re-chunks: {ll_ev} SSE events per stream vs {d_ev} direct (not counted as an error)")

        # B3b: inter-chunk gaps, streams one at a time: on the mock paced at 30 ms a token, on the
        # real server as fast as the model makes tokens (what a relay adds per token)
        if paced_body is not None:
            gap: dict[str, list[float]] = {t: [] for t in targets}
            for r in range(2):
                order = round_order(targets, r)
                for t in order:
                    res = load("gaps", targets[t] + path, "--count", str(5 if quick else 10),
                               "--body", json.dumps(paced_body))
                    gap[t] += res["gaps_s"]  # type: ignore[arg-type]
            result["gaps"] = {t: {"p50_ms": pct(v, 0.5) * 1e3, "p99_ms": pct(v, 0.99) * 1e3, "n": len(v)}
                              for t, v in gap.items()}

        # B4: throughput ladder, interleaved rounds (each round starts with another target, the
        # figure is the median round): 2 shared cores drift, and one round per target let that
        # drift decide ratios of a few percent
        tput: dict[str, dict[str, object]] = {}
        sps: dict[str, dict[str, float]] = {}
        n_rounds = 1 if quick else rounds
        for c in ladder:
            per: dict[str, dict[str, list[float]]] = {
                t: {"sps": [], "errors": [], "done": [], **{k: [] for k in CPU_KINDS}} for t in targets}
            ev_seen: dict[str, set[int]] = {t: set() for t in targets}
            for r in range(n_rounds):
                order = round_order(targets, r)
                for t in order:
                    before = cpu_now(pids.get(t), up_pid)
                    res = load("throughput", targets[t] + path, "--concurrency", str(c), "--seconds", str(seconds),
                               *body_args)
                    after = cpu_now(pids.get(t), up_pid)
                    row = per[t]
                    row["sps"].append(float(res["streams_per_s"]))  # type: ignore[arg-type]
                    row["errors"].append(float(res["errors"]))  # type: ignore[arg-type]
                    row["done"].append(float(res["completed"]))  # type: ignore[arg-type]
                    for k, a, b in zip(CPU_KINDS, after, before, strict=True):
                        row[k].append(a - b)
                    ev_seen[t].update(res["events"])  # type: ignore[arg-type]
            for t, row in per.items():
                done = max(1.0, sum(row["done"]))
                # CPU per completed stream, by process: on 2 shared cores the proxy's own cost is what
                # separates the targets (load generator and upstream are the same for all of them)
                tput.setdefault(str(c), {})[t] = {
                    "streams_per_s": statistics.median(row["sps"]), "rounds": row["sps"],
                    "errors": int(sum(row["errors"])), "events": sorted(ev_seen[t]),
                    "cpu_us_per_stream": {k: sum(row[k]) / done * 1e6 for k in CPU_KINDS}}
                sps.setdefault(str(c), {})[t] = statistics.median(row["sps"])
            if "nginx" in per:  # round by round: the two were measured minutes apart at most
                for t in targets:
                    if t.startswith("g"):
                        pairs = zip(per[t]["sps"], per["nginx"]["sps"], strict=True)
                        tput[str(c)][t]["over_nginx_by_round"] = [g / n if n else float("nan") for g, n in pairs]
        result["throughput"] = tput
        if "litellm" in targets:  # the bar: gateway ≥ 5× LiteLLM at c=32
            result["gateway_over_litellm"] = {
                g: {c: row[g] / row["litellm"] if row["litellm"] else None for c, row in sps.items()}
                for g in targets if g.startswith("g")}

        # B5: cancel propagation (slot idle on the upstream after the client aborts)
        reps = 5 if quick else 10
        cancel: dict[str, object] = {}
        for t in targets:
            # LiteLLM keeps reading an aborted upstream stream (~25 s on the stdlib fake), so its
            # cancels pile up on the upstream's slots: fewer of them, and a time-out is a result
            count = min(reps, 3) if t == "litellm" else reps
            try:
                res = load("cancel", targets[t] + path, "--slots-url", f"http://127.0.0.1:{up_port}/slots",
                           "--count", str(count), "--body", json.dumps(cancel_body))
            except subprocess.TimeoutExpired:
                cancel[t] = {"p50_ms": float("nan"), "max_ms": float("nan"), "timed_out": True}
                continue
            lat = res["cancel_s"]
            cancel[t] = {"p50_ms": pct(lat, 0.5) * 1e3, "max_ms": max(lat) * 1e3}  # type: ignore[arg-type]
        result["cancel"] = cancel
    return result


@contextlib.contextmanager
def _nginx(prefix: Path, port: int, up_port: int) -> Iterator[int]:
    proc = nginx.start(prefix, port, f"127.0.0.1:{up_port}", own_session=SCHED["own"])
    try:
        yield proc.pid
    finally:
        stop_group(proc, signal.SIGQUIT)  # nginx's graceful stop


def table(result: dict[str, object]) -> str:
    lines = [f"== {result['label']} =="]
    ttfb = result["ttfb"]
    assert isinstance(ttfb, dict)
    d = ttfb["direct"]
    lines.append(f"{'TTFB c=1 (ms)':28} " + "  ".join(f"{t}: p50 {v['p50_ms']:.2f} p99 {v['p99_ms']:.2f}"
                                                       for t, v in ttfb.items()))
    for t, v in ttfb.items():
        if t != "direct":
            lines.append(f"  added by {t:8}            p50 {v['p50_ms'] - d['p50_ms']:+.2f} ms  "
                         f"p99 {v['p99_ms'] - d['p99_ms']:+.2f} ms")
    if "gaps" in result:
        g = result["gaps"]
        assert isinstance(g, dict)
        lines.append(f"{'inter-chunk gap (ms)':28} " + "  ".join(
            f"{t}: p50 {v['p50_ms']:.2f} p99 {v['p99_ms']:.2f}" for t, v in g.items()))
        for t, v in g.items():
            if t != "direct":
                lines.append(f"  added by {t:8}            p50 {v['p50_ms'] - g['direct']['p50_ms']:+.2f} ms  "
                             f"p99 {v['p99_ms'] - g['direct']['p99_ms']:+.2f} ms")
    same = "identical" if result.get("events_identical") else "DIFFERENT"
    lines.append(f"{'SSE events per stream':28} {result['events']} ({same}"
                 + (", litellm apart" if "litellm_events_note" in result else "") + ")")
    if "litellm_events_note" in result:
        lines.append(f"{'':28} {result['litellm_events_note']}")
    tput = result["throughput"]
    assert isinstance(tput, dict)
    names = list(tput[next(iter(tput))])
    gws = [t for t in names if t.startswith("g")]
    ll = "litellm" in names
    rl = "py-relay" in names
    lines.append(f"{'streams/s':10} {'c':>4} " + " ".join(f"{t:>10}" for t in names)
                 + "".join(f" {t + '/direct':>17} {t + '/nginx':>16}" + (f" {t + '/litellm':>18}" if ll else "")
                           + (f" {t + '/py-relay':>19}" if rl else "") for t in gws)
                 + " errors(" + "/".join(names) + ")")
    for c, row in tput.items():
        vals = {t: v["streams_per_s"] for t, v in row.items()}
        errs = "/".join(str(v["errors"]) for v in row.values())
        ratios = ""
        for g in gws:
            gd = vals[g] / vals["direct"] if vals["direct"] else float("nan")
            gn = vals[g] / vals["nginx"] if vals.get("nginx") else float("nan")
            ratios += f" {gd:17.2f} {gn:16.2f}"
            if ll:
                ratios += f" {vals[g] / vals['litellm'] if vals['litellm'] else float('nan'):18.2f}"
            if rl:
                ratios += f" {vals[g] / vals['py-relay'] if vals['py-relay'] else float('nan'):19.2f}"
        lines.append(f"{'':10} {c:>4} " + " ".join(f"{v:10.1f}" for v in vals.values()) + ratios + f" {errs}")
    for c, row in tput.items():
        for g in gws:
            if by_round := row[g].get("over_nginx_by_round"):
                lines.append(f"  {g}/nginx round by round, c={c}: " + " ".join(f"{r:.3f}" for r in by_round)
                             + f"  (median {statistics.median(by_round):.3f})")
    cpu_row = tput.get("32") or next(iter(tput.values()))
    lines.append(f"{'proxy CPU per stream (us)':28} " + "  ".join(
        f"{t}: {v['cpu_us_per_stream']['proxy']:.0f} (user {v['cpu_us_per_stream']['proxy_user']:.0f})"
        for t, v in cpu_row.items() if t != "direct")
        + f"  (c={'32' if '32' in tput else next(iter(tput))}; upstream "
        f"{cpu_row['direct']['cpu_us_per_stream']['upstream']:.0f}, load generator "
        f"{cpu_row['direct']['cpu_us_per_stream']['load']:.0f} direct)")
    cancel = result["cancel"]
    assert isinstance(cancel, dict)
    lines.append(f"{'cancel→slot idle (ms)':28} " + "  ".join(
        f"{t}: p50 {v['p50_ms']:.1f} max {v['max_ms']:.1f}" + (" (10 s cap: still busy)" if v["max_ms"] >= 1e4 else "")
        for t, v in cancel.items()))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway")
    parser.add_argument("--quick", action="store_true", help="fewer requests, shorter rounds")
    parser.add_argument("--skip-real", action="store_true", help="no real llama-server suite")
    parser.add_argument("--skip-fake", action="store_true", help="no stdlib fake llama-server suite")
    parser.add_argument("--skip-mock", action="store_true", help="no aiohttp mock suite")
    parser.add_argument("--skip-litellm", action="store_true", help="no LiteLLM proxy target even if installed")
    parser.add_argument("--install-litellm", action="store_true",
                        help=f"create {litellm_proxy.VENV} with {litellm_proxy.SPEC} from PyPI and exit")
    parser.add_argument("--ladder", help="concurrencies for every suite, comma-separated (e.g. 32), "
                        "instead of each suite's own ladder")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds per concurrency (default 3; more narrow a ratio of a few percent)")
    parser.add_argument("--sched", choices=("own", "shared"), default="own",
                        help="own (default): every server in its own session, as in use; shared: all in this "
                        "one, which Linux's autogroup scheduler treats as one group (see bench/README.md)")
    parser.add_argument("--baseline", type=Path, help="another checkout (e.g. `git worktree add /tmp/b HEAD~1`) "
                        "whose gateway runs as an extra target, gw-baseline")
    args = parser.parse_args()
    SCHED["own"] = args.sched == "own"
    # SIGTERM ends the run as Ctrl-C does, through every `with`: each server it started is stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.install_litellm:
        print(f"LiteLLM {litellm_proxy.install()} installed in {litellm_proxy.VENV}")
        return
    ll_version = litellm_proxy.version() if litellm_proxy.binary() else None
    use_litellm = ll_version is not None and not args.skip_litellm
    if ll_version is None:
        ll_status = litellm_proxy.skip_note()
    elif args.skip_litellm:
        ll_status = f"LiteLLM proxy {ll_version}: skipped (--skip-litellm)"
    else:
        ll_status = f"LiteLLM proxy {ll_version} (1 worker, {litellm_proxy.VENV})"
    print(ll_status, flush=True)
    results: dict[str, object] = {
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "load_before": os.getloadavg(),
                    "sched": args.sched, "autogroup": autogroup(), "time": time.strftime("%Y-%m-%dT%H:%M:%S")},
        "litellm": {"version": ll_version, "measured": use_litellm, "note": ll_status},
        "suites": [],
    }
    quick = args.quick
    seconds = 1.5 if quick else 3.0
    suites: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-gw-") as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "m.gguf").write_bytes(b"GGUF" + b"\0" * 16)
        port = free_port()
        fake_cmd = [PY, str(FAKE), "--host", "127.0.0.1", "--port", str(port), "-m", str(tmp / "m.gguf"),
                    "--alias", "bench", "-np", "8"]
        env = {**os.environ, "FAKE_TOKEN_DELAY": "0"}
        cancel_env_body = {**json.loads(json.dumps({"model": "bench", "messages": [{"role": "user", "content": "x"}],
                                                    "stream": True})), "max_tokens": 100000}
        ladder = [1, 8, 32, 128, 512] if not quick else [1, 32, 512]
        chosen = [int(c) for c in args.ladder.split(",")] if args.ladder else None
        n_ttfb = 150 if quick else 300
        if not args.skip_mock:
            mock = run_suite("aiohttp mock (0 ms/token)", [PY, "-m", "bench.gateway.mock", "--port", str(port)],
                             port, tmp, quick, chosen or ladder, {**cancel_env_body, "mock_token_delay": 0.01}, None,
                             n_ttfb, seconds, baseline=args.baseline, litellm=use_litellm, rounds=args.rounds,
                             paced_body={**load_mod.BODY, "max_tokens": 16, "mock_token_delay": 0.03}, relay=True)
            suites.append(mock)
            print(table(mock), flush=True)
        if not args.skip_fake:
            port = free_port()
            fake_cmd[fake_cmd.index("--port") + 1] = str(port)
            # the stdlib fake pays ~40 ms delayed-ACK per stream at c=1 (small separate writes), so its
            # TTFB rows measure that, not the proxy; its ladder and event counts still matter
            fake = run_suite("stdlib fake llama-server (0 ms/token)", fake_cmd, port, tmp, quick, chosen or ladder,
                             cancel_env_body, env, n_ttfb // 3, seconds, litellm=use_litellm, rounds=args.rounds,
                             baseline=args.baseline)
            suites.append(fake)
            print(table(fake), flush=True)
        if not args.skip_real:
            port = free_port()
            real_cmd = [llama_server_bin(), "--host", "127.0.0.1", "--port", str(port), "-m",
                        str(tiny_model(tmp)), "--alias", "bench", "-c", "8192", "-np", "8", "-t", "1",
                        "--cache-ram", "0"]
            # --cache-ram 0: llama-server's host prompt cache (8 GiB by default) grows with every
            # request and made each round slower than the last (direct 157 -> 129 -> 122 streams/s
            # at c=32); with it off, six rounds in a row stay within 4 %.
            # ignore_eos + a fixed max_tokens: the tiny model would otherwise stop at a random
            # point; the grammar keeps every token plain ASCII, because llama-server holds back a
            # token that ends inside a UTF-8 sequence (no event for it), which made counts vary.
            # So every stream has exactly 16 token events on every target.
            real_body = {"model": "bench", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 16,
                         "ignore_eos": True, "grammar": "root ::= [a-z ]+", "stream": True}
            real = run_suite("real llama-server (tiny model)", real_cmd, port, tmp, quick,
                             chosen or ([1, 8, 32] if not quick else [1, 32]),
                             {**cancel_env_body, "max_tokens": 6000, "ignore_eos": True}, None,
                             90 if quick else 150, seconds, real_body, litellm=use_litellm, rounds=args.rounds,
                             baseline=args.baseline,
                             paced_body={**real_body, "max_tokens": 64})
            suites.append(real)
            print(table(real), flush=True)
    results["suites"] = suites
    results["machine"]["load_after"] = os.getloadavg()  # type: ignore[index]
    print(ll_status)
    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"gateway-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
