"""The gateway's own state as it answers it: `/health` (public: how many instances, how many
routable) and `/metrics` (Prometheus text: the gateway's figures, and each instance's own
llama.cpp metrics relabelled; `?model=` is router mode's spelling of one model's own page)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aiohttp import web

from llama_orchestrator.core.routing import InstanceDirectory
from llama_orchestrator.core.states import PROCESS_STATES
from llama_orchestrator.gateway import scrape
from llama_orchestrator.gateway.auth import Key
from llama_orchestrator.gateway.errors import SOURCE_HEADER
from llama_orchestrator.gateway.metrics import GatewayMetrics
from llama_orchestrator.gateway.model_control import ModelControl
from llama_orchestrator.gateway.pool import UpstreamPool
from llama_orchestrator.gateway.traffic import Traffic


class StatusRoutes:
    def __init__(
        self, directory: InstanceDirectory, traffic: Traffic, metrics: GatewayMetrics, control: ModelControl,
        authorize: Callable[[web.BaseRequest], Key | None], pool: Callable[[], UpstreamPool | None],
        gpu_memory: Callable[[], Sequence[tuple[float, float]] | None],
    ) -> None:
        self.directory = directory
        self.traffic = traffic
        self.metrics = metrics
        self.control = control
        self.authorize = authorize
        self.pool = pool  # None before the gateway starts
        self.gpu_memory = gpu_memory

    async def health(self, _request: web.BaseRequest) -> web.Response:
        ups = self.directory.upstreams()
        body = {"status": "ok", "instances": len(ups), "routable": sum(1 for u in ups if u.routable)}
        return web.json_response(body, headers={SOURCE_HEADER: "gateway"})

    async def metrics_page(self, request: web.BaseRequest) -> web.StreamResponse:
        if "model" in request.query:  # router mode's spelling: that model's own /metrics
            return await self.control.per_model(request, "metrics")
        self.authorize(request)
        ups = self.directory.upstreams()
        scraped = [u for u in ups if u.metrics and u.state in PROCESS_STATES]
        pool = self.pool()
        children = await scrape.child_metrics(pool, scraped) if scraped and pool is not None else []
        text = self.metrics.render(ups, children, self.traffic.evictions, self.traffic.waiting, self.gpu_memory())
        return web.Response(text=text, content_type="text/plain", charset="utf-8", headers={SOURCE_HEADER: "gateway"})
