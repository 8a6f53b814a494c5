"""`/instances/<name>/…`: any route of one instance's own llama-server, as it answers it (health,
slots, props, lora-adapters, slot save and restore, and its web UI at `/instances/<name>/` when
the build has one), as llama-swap's `/upstream/<model>/` does.

The UI's page is public, as llama-server serves it (it asks for the key itself); every other
route, and anything but reading that page, needs a key that may reach the instance itself (one
scoped to its name or an alias: these routes skip a variant's filters, so a key scoped only to a
variant does not reach them; gateway.catalog).
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from llama_orchestrator.core.routing import InstanceDirectory, Upstream
from llama_orchestrator.core.states import PROCESS_STATES
from llama_orchestrator.gateway import proxy
from llama_orchestrator.gateway.auth import Key
from llama_orchestrator.gateway.catalog import own_names
from llama_orchestrator.gateway.errors import NotFound, Unavailable
from llama_orchestrator.gateway.pool import UpstreamPool
from llama_orchestrator.gateway.routes import PUBLIC_NATIVE, with_slash
from llama_orchestrator.gateway.upstream import Timeouts

PREFIX = "/instances/"


class NativeRoutes:
    def __init__(
        self, directory: InstanceDirectory, authorize: Callable[[web.BaseRequest], Key | None],
        pool: Callable[[], UpstreamPool], timeout: Callable[[], Timeouts],
    ) -> None:
        self.directory = directory
        self.authorize = authorize
        self.pool = pool  # the gateway's (raises 503 while it shuts down)
        self.timeout = timeout  # the inference routes' (its web UI streams its chats through here)

    async def route(self, request: web.BaseRequest) -> web.StreamResponse:
        """A request whose path starts with PREFIX."""
        name, sep, tail = request.path[len(PREFIX):].partition("/")
        if not name:
            raise NotFound(f"name an instance: {PREFIX}<name>/<route>", code="route_not_found")
        if not sep:  # the web UI's relative links need the trailing slash
            target = with_slash(request.rel_url.raw_path, request.rel_url.raw_query_string)
            return web.Response(status=308, headers={"Location": target})
        ups = self.directory.upstreams()
        upstream = next((u for u in ups if u.name == name), None)
        if tail not in PUBLIC_NATIVE or request.method not in ("GET", "HEAD"):
            key = self.authorize(request)
            if key is not None and upstream is not None and not key.allows(own_names(upstream)):
                upstream = None
        if upstream is None:
            raise NotFound(f"no instance named {name!r}; instances: {', '.join(sorted(u.name for u in ups))}",
                           code="instance_not_found")
        if upstream.state not in PROCESS_STATES:
            raise Unavailable(f"instance {name!r} is {upstream.state.value}", code="instance_not_running",
                              retry_after_s=5)
        path = "/" + tail + (f"?{request.query_string}" if request.query_string else "")
        return await self.forward(request, upstream, path)

    async def forward(self, request: web.BaseRequest, upstream: Upstream, path: str) -> web.StreamResponse:
        """Relay `request` to `path` (with its query) on `upstream`, as it answers."""
        body = await request.read() if request.can_read_body else None
        return await proxy.forward(self.pool(), request, upstream, path, body, self.timeout(), proxy.Outcome(),
                                   native=True)
