"""Run the gateway alone in this process in front of fixed upstreams (a benchmark target).

    python -m bench.gateway.serve --port P --upstream NAME=ALIAS=http://127.0.0.1:PORT [...] [--loop asyncio]

It runs on the daemon's event loop (llama_orchestrator.eventloop: uvloop on Linux and macOS);
`--loop asyncio` runs it on asyncio's own loop instead, which is what Windows gets.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time

from llama_orchestrator import eventloop, scheduling
from llama_orchestrator.config.orchestrator import GatewayConfig
from llama_orchestrator.core.routing import Upstream
from llama_orchestrator.core.states import InstanceState
from llama_orchestrator.core.traffic_health import Evidence
from llama_orchestrator.gateway.auth import Keyring
from llama_orchestrator.gateway.server import Gateway


class FixedDirectory:
    """Every upstream ready; counts in-flight like the daemon's directory."""

    def __init__(self, ups: list[Upstream]) -> None:
        self.entries = {u.name: u for u in ups}
        self.in_flight = dict.fromkeys(self.entries, 0)
        self.last_used = dict.fromkeys(self.entries, 0.0)

    def upstreams(self, model: str | None = None) -> list[Upstream]:
        out = []
        for name, u in self.entries.items():
            if model is not None and not u.serves(model):
                continue
            out.append(Upstream(u.name, u.alias, u.base_url, u.state, u.routable, u.on_demand, u.pinned,
                                u.idle_ttl_s, self.in_flight[name], self.last_used[name]))
        return out

    def request_start(self, name: str, reason: str) -> None:
        pass

    def request_stop(self, name: str, reason: str) -> None:
        pass

    async def wait_routable(self, name: str, timeout_s: float) -> bool:
        return True

    def begin_request(self, name: str) -> None:
        self.in_flight[name] += 1
        self.last_used[name] = time.monotonic()

    def end_request(self, name: str, evidence: Evidence = None) -> None:
        self.in_flight[name] -= 1
        self.last_used[name] = time.monotonic()


async def main(port: int, specs: list[str]) -> None:
    ups = []
    for spec in specs:
        name, alias, url = spec.split("=", 2)
        ups.append(Upstream(name, alias, url, InstanceState.READY, True, False, False, None, 0, 0.0))
    gw = Gateway(GatewayConfig(port=port, queue_size=1024), FixedDirectory(ups), Keyring())
    await gw.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"gateway listening on {gw.address}", flush=True)
    await stop.wait()
    await gw.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", action="append", required=True)
    parser.add_argument("--loop", choices=("auto", "asyncio"), default="auto",
                        help="auto: the daemon's choice (uvloop on Linux and macOS); asyncio: asyncio's own loop")
    args = parser.parse_args()
    if args.loop == "asyncio":
        os.environ[eventloop.ENV_EVENT_LOOP] = "asyncio"
    with scheduling.batch():  # as the daemon runs (llama_orchestrator.scheduling)
        eventloop.run(main(args.port, args.upstream))
