"""`python -m bench.gateway.instructions`: what one streamed request costs the gateway in CPU
instructions, beside py-relay, counted by valgrind's callgrind.

    .venv/bin/python -m bench.gateway.instructions [--requests 50,250]

Seconds on 2 shared cores swing by ±10 % between rounds; the gateway's instructions per request
move by about 1 % between runs (how the mock's events fall into reads varies a little). Each
target (the gateway's fast lane, and py-relay, a byte relay that parses nothing) runs under
callgrind in front of the aiohttp mock, and the load generator sends N streamed chat
completions one after another (c=1), for each N given; (instructions at the larger N - at the
smaller) / the difference is the cost of one request, start-up and shut-down cancelled out.
User space only: the kernel's share (the syscalls, the same for both) is not counted. Needs
valgrind. Results: bench/results/instructions-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

from bench.gateway.__main__ import PY, REPO, free_port, process, wait_http

TARGETS = {
    "gateway": lambda port, up: ["-m", "bench.gateway.serve", "--port", str(port),
                                 "--upstream", f"bench=bench=http://127.0.0.1:{up}"],
    "py-relay": lambda port, up: ["-m", "bench.gateway.tcp_relay", "--port", str(port), "--upstream-port", str(up)],
}


def instructions(target: str, requests: int, mock_port: int, scratch: Path) -> int:
    """Instructions the target process ran in all, serving `requests` streams one by one."""
    port, out = free_port(), scratch / f"{target}-{requests}.callgrind"
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", PY, *TARGETS[target](port, mock_port)]
    with process(cmd, scratch / f"{target}.log") as proc:
        wait_http(f"http://127.0.0.1:{port}/health", 180, proc)  # the gateway's own; py-relay's is the mock's
        subprocess.run([PY, "-m", "bench.gateway.load", "ttfb", f"http://127.0.0.1:{port}/v1/chat/completions",
                        "--count", str(requests)], check=True, capture_output=True, cwd=REPO)
    totals = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
    if totals is None:
        raise RuntimeError(f"no instruction total in {out}")
    return int(totals.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway.instructions", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", default="50,250", help="two request counts, smaller first")
    few, many = (int(n) for n in parser.parse_args().requests.split(","))
    per_request: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        mock_port = free_port()
        with process([PY, "-m", "bench.gateway.mock", "--port", str(mock_port)], scratch / "mock.log") as mock:
            wait_http(f"http://127.0.0.1:{mock_port}/health", 60, mock)
            for target in TARGETS:
                counts = [instructions(target, n, mock_port, scratch) for n in (few, many)]
                per_request[target] = (counts[1] - counts[0]) / (many - few)
    ratio = per_request["gateway"] / per_request["py-relay"]
    for target, n in per_request.items():
        print(f"{target:<10} {n:>12,.0f} instructions per streamed request (c=1, user space)")
    print(f"gateway/py-relay {ratio:.1f}")
    out = REPO / "bench" / "results" / f"instructions-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"requests": [few, many], "per_request": per_request, "gateway_over_relay": ratio},
                              indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
