"""llama-server's router-mode model API, on the gateway: clients written for `llama-server` in
router mode (Pi's llama.cpp provider, the `llm` llama.cpp plugin, scripts that free VRAM) see,
load and unload models through it as they do there.

    GET  /models, /v1/models             each entry's `status`: {"value": "loaded" | "loading" |
                                         "unloaded"} (catalog.load_status)
    POST /models/load    {"model": "x"}  start x's instance(s), as a first request would
                                         (`max_loaded` evicts an idle one to make room)
    POST /models/unload  {"model": "x"}  stop them (requests in flight finish first)

Both answer `{"success": true}` at once, and the client polls `/models` for the outcome, as
against llama-server. A key scoped to other models finds `x` absent (404), as everywhere else.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from llama_orchestrator.core import routing
from llama_orchestrator.core.routing import InstanceDirectory, Upstream
from llama_orchestrator.core.states import PROCESS_STATES, InstanceState
from llama_orchestrator.gateway.auth import Key
from llama_orchestrator.gateway.catalog import available_models, read_json, served_names
from llama_orchestrator.gateway.errors import SOURCE_HEADER, BadRequest, ModelNotFound
from llama_orchestrator.gateway.traffic import Traffic

S = InstanceState
_STARTABLE = frozenset({S.STOPPED, S.FAILED, S.STOPPING})
_STOPPABLE = PROCESS_STATES | {S.BACKOFF}


class ModelControl:
    def __init__(
        self, directory: InstanceDirectory, traffic: Traffic, authorize: Callable[[web.BaseRequest], Key | None]
    ) -> None:
        self.directory = directory
        self.traffic = traffic
        self.authorize = authorize

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
        try:
            body = read_json(await request.read())
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"the request body is not valid JSON: {exc}", code="invalid_json") from exc
        model = body.get("model") if isinstance(body, dict) else None
        if not isinstance(model, str) or not model:
            raise BadRequest('the body must name the model: {"model": "<name or alias>"}', code="model_required",
                             param="model")
        ups = self.directory.upstreams()
        replicas = routing.candidates(ups, model)
        if not replicas or (key is not None and not key.allows(served_names(ups, model))):
            visible = [m for m in available_models(ups) if key is None or key.allows({m})]
            raise ModelNotFound(model, visible)
        return replicas


def _success() -> web.Response:
    return web.json_response({"success": True}, headers={SOURCE_HEADER: "gateway"})
