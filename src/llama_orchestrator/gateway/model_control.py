"""llama-server's router-mode model API, on the gateway: clients written for `llama-server` in
router mode (Pi's llama.cpp provider, the `llm` llama.cpp plugin, scripts that free VRAM) see,
load and unload models through it as they do there.

    GET  /models, /v1/models             each entry's `status`: {"value": "loaded" | "loading" |
                                         "unloaded"} (catalog.load_status)
    POST /models/load    {"model": "x"}  start x's instance(s), as a first request would
                                         (`max_loaded` evicts an idle one to make room)
    POST /models/unload  {"model": "x"}  stop them (requests in flight finish first)
    GET  /models/sse                     each model's status now, then each change, as SSE:
                                         data: {"model": "x", "event": "model_status",
                                                "data": {"status": "loaded"}}

Load and unload answer `{"success": true}` at once, and the client polls `/models` (or follows
`/models/sse`) for the outcome, as against llama-server. A key scoped to other models finds `x`
absent (404), as everywhere else.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import cast

from aiohttp import web

from llama_orchestrator.core import routing
from llama_orchestrator.core.routing import InstanceDirectory, Upstream
from llama_orchestrator.core.states import PROCESS_STATES, InstanceState
from llama_orchestrator.gateway.auth import Key
from llama_orchestrator.gateway.catalog import model_list, parse_json, served_names, visible_models
from llama_orchestrator.gateway.errors import SOURCE_HEADER, BadRequest, ModelNotFound
from llama_orchestrator.gateway.traffic import Traffic

S = InstanceState
_STARTABLE = frozenset({S.STOPPED, S.FAILED, S.STOPPING})
_STOPPABLE = PROCESS_STATES | {S.BACKOFF}
WATCH_EVERY_S = 0.25  # how often /models/sse compares the models' status (a snapshot: no I/O)
PING_EVERY_S = 15.0  # an SSE comment this often keeps idle proxies and clients from timing out


class ModelControl:
    def __init__(
        self, directory: InstanceDirectory, traffic: Traffic, authorize: Callable[[web.BaseRequest], Key | None],
        closing: Callable[[], bool],
    ) -> None:
        self.directory = directory
        self.traffic = traffic
        self.authorize = authorize
        self.closing = closing  # the gateway is stopping: /models/sse streams end

    async def watch(self, request: web.BaseRequest) -> web.StreamResponse:
        """`/models/sse`: the status of every model the key may see, then each change, until the
        client leaves or the gateway stops."""
        key = self.authorize(request)
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
            SOURCE_HEADER: "gateway",
        })
        await response.prepare(request)
        seen: dict[str, str] = {}
        quiet_s = 0.0
        try:
            while not self.closing():
                now = {str(m["id"]): str(cast(dict[str, object], m["status"])["value"])
                       for m in model_list(self.directory.upstreams(), key)}
                changed = [(model, status) for model, status in now.items() if seen.get(model) != status]
                seen = now
                for model, status in changed:
                    event = {"model": model, "event": "model_status", "data": {"status": status}}
                    await response.write(b"data: " + json.dumps(event).encode() + b"\n\n")
                quiet_s = 0.0 if changed else quiet_s + WATCH_EVERY_S
                if quiet_s >= PING_EVERY_S:
                    quiet_s = 0.0
                    await response.write(b": ping\n\n")
                await asyncio.sleep(WATCH_EVERY_S)
            await response.write_eof()
        except ConnectionError:
            pass  # the client left
        return response

    async def load(self, request: web.BaseRequest) -> web.Response:
        for u in await self._targets(request):
            if u.state in _STARTABLE and not u.restarting:
                self.traffic.start(u.name, "load requested (POST /models/load)")
        return _success()

    async def unload(self, request: web.BaseRequest) -> web.Response:
        for u in await self._targets(request):
            already_going = u.state is S.STOPPING and not u.restarting
            if u.state in _STOPPABLE and not already_going:
                self.directory.request_stop(u.name, "unload requested (POST /models/unload)")
        return _success()

    async def _targets(self, request: web.BaseRequest) -> list[Upstream]:
        """The instances serving the body's `model` that the caller's key may reach."""
        key = self.authorize(request)
        body = parse_json(await request.read())
        model = body.get("model") if isinstance(body, dict) else None
        if not isinstance(model, str) or not model:
            raise BadRequest('the body must name the model: {"model": "<name or alias>"}', code="model_required",
                             param="model")
        ups = self.directory.upstreams()
        replicas = routing.candidates(ups, model)
        if not replicas or (key is not None and not key.allows(served_names(ups, model))):
            raise ModelNotFound(model, visible_models(ups, key))
        return replicas


def _success() -> web.Response:
    return web.json_response({"success": True}, headers={SOURCE_HEADER: "gateway"})
