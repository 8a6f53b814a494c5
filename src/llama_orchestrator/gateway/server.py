"""The gateway: one OpenAI-compatible listener in front of every instance (DESIGN section 5).

    gateway = Gateway(config, directory)      # keys=None: read gateway.api_keys_env / _file
    await gateway.start()                     # binds; GatewayStartError if it cannot
    gateway.address                           # "http://127.0.0.1:8000"
    await gateway.stop()                      # closes the listener: 503 to requests waiting, an SSE error to streams

Routes: gateway.routes.

Each connection starts at the front door (gateway.frontdoor): a plain inference request with a valid
key and body is forwarded there without aiohttp (gateway.exchange), after a wait in the queue or for a
start if need be; the first request that is anything else hands the connection to aiohttp's server.
One `UpstreamPool` (gateway.pool over gateway.upstream, a lean HTTP/1.1 client) carries every
upstream request; its idle connections expire after `upstream_keepalive_s` (< llama-server's 5 s).
aiohttp runs with handler cancellation on, so a client that disconnects cancels its handler and
with it the upstream request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from llama_orchestrator.config.orchestrator import GatewayConfig
from llama_orchestrator.config.origins import local_host
from llama_orchestrator.core import routing
from llama_orchestrator.core.routing import InstanceDirectory, Upstream
from llama_orchestrator.core.traffic_health import Evidence
from llama_orchestrator.gateway import fim, proxy, upstream as upclient
from llama_orchestrator.gateway.auth import Key, Keyring, keyring_for, presented_key
from llama_orchestrator.gateway.catalog import requested_model, served_names, visible_models
from llama_orchestrator.gateway.cors import Cors, request_class
from llama_orchestrator.gateway.errors import (
    GatewayStartError,
    HTTPFailure,
    MethodNotAllowed,
    ModelNotFound,
    NotFound,
    shutting_down,
    to_response,
)
from llama_orchestrator.gateway.fim import FimCompletions
from llama_orchestrator.gateway.frontdoor import FrontDoor, Lane
from llama_orchestrator.gateway.holding import ClientGone, HeldStream
from llama_orchestrator.gateway.http1 import PlainRequest
from llama_orchestrator.gateway.listener import Listeners, open_listeners
from llama_orchestrator.gateway.loopback import Loopback
from llama_orchestrator.gateway.metrics import GatewayMetrics, model_label
from llama_orchestrator.gateway.model_control import ModelControl
from llama_orchestrator.gateway.native import PREFIX as NATIVE_PREFIX, NativeRoutes
from llama_orchestrator.gateway.ollama_routes import PREFIX as OLLAMA_PREFIX, OllamaRoutes, error_response, not_served
from llama_orchestrator.gateway.pool import UpstreamPool
from llama_orchestrator.gateway.resumable import ConversationOwners, ResumableStreams
from llama_orchestrator.gateway.routes import INFERENCE_PATHS, MODEL_PREFIXES, SERVED
from llama_orchestrator.gateway.status_routes import StatusRoutes
from llama_orchestrator.gateway.traffic import Traffic

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
STOP_DRAIN_S = 5.0

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
MAX_BODY = 64 * 1024 * 1024  # request bodies (long prompts, embedding batches)


class Gateway:
    def __init__(
        self,
        config: GatewayConfig,
        directory: InstanceDirectory,
        keys: Keyring | None = None,
        *,
        idle_check_interval_s: float = 1.0,
        gpu_memory: Callable[[], Sequence[tuple[float, float]] | None] = lambda: None,
    ) -> None:
        self.config = config
        self.gpu_memory = gpu_memory  # (used, total) MiB per GPU for /metrics (the daemon's nvidia-smi reading)
        self.directory = directory
        self.keys = keys
        self.metrics = GatewayMetrics()
        self.traffic = Traffic(config, directory)
        self.cors = Cors(config.cors_origins)
        self.idle_check_interval_s = idle_check_interval_s
        self._pool: UpstreamPool | None = None
        self._listeners: Listeners | None = None
        self._web: web.Server | None = None  # aiohttp's protocol, for every request the fast lane leaves
        self._lane: Lane | None = None
        self._idle_task: asyncio.Task[None] | None = None
        self._closing = False
        self._check_host = False  # a keyless gateway on loopback answers only local Host names (gateway.cors)
        self._active = 0  # inference requests being proxied
        self._live: set[upclient.Response] = set()  # upstream responses being relayed
        self._drained = asyncio.Event()
        self._address = ""
        self._stream_timeout = _stream_timeouts(config)  # (an instance's own routes stream too: its web UI's chats)
        self._native = NativeRoutes(self.directory, self._authorize, lambda: self.pool, lambda: self._stream_timeout)
        self._conversations = ConversationOwners()  # which instance holds each named conversation's stream
        self._streams = ResumableStreams(self._conversations, self.directory, self._authorize, lambda: self.pool,
                                         self._native.forward)
        self._control = ModelControl(self.directory, self.traffic, self._authorize, lambda: self._closing,
                                     self._native.forward)  # llama-server router mode's API
        self._self_address = ("127.0.0.1", 0)  # where the gateway reaches itself (translated APIs go through it)
        loopback = Loopback(lambda: self.pool, lambda: self._self_address, lambda: self._stream_timeout)
        self._ollama = OllamaRoutes(self.directory, self.traffic, self._authorize, loopback)
        self._fim = FimCompletions(loopback, self._inference)
        self._status = StatusRoutes(self.directory, self.traffic, self.metrics, self._control, self._authorize,
                                    lambda: self._pool, lambda: self.gpu_memory())
        self._get, self._post, self._delete = self._routes()
        self._by_method = {"POST": self._post, "GET": self._get, "HEAD": self._get, "DELETE": self._delete}

    # --- lifecycle -------------------------------------------------------------------------------
    @property
    def address(self) -> str:
        """`http(s)://host:port` the gateway listens on (after `start`)."""
        return self._address

    @property
    def lanes(self) -> dict[str, int]:
        """Requests the fast lane answered, and connections it handed to aiohttp (gateway.frontdoor)."""
        return {"fast": self._lane.answered, "handed_off": self._lane.handed_off} if self._lane else {}

    def _routes(self) -> tuple[dict[str, Handler], dict[str, Handler], dict[str, Handler]]:
        """(GET, POST, DELETE routes) by exact path; `/instances/<name>/<native>` is matched apart."""
        control, streams = self._control, self._streams
        get: dict[str, Handler] = {
            "/health": self._status.health, "/metrics": self._status.metrics_page, "/v1/models": control.models,
            "/models": control.models,
            "/models/sse": control.watch, "/props": control.props, "/slots": control.slots,
            "/v1/stream": streams.stream,
        }
        post: dict[str, Handler] = {"/models/load": control.load, "/models/unload": control.unload}
        post["/v1/streams/lookup"] = streams.lookup
        ollama_get, ollama_post = self._ollama.routes()
        inference = {**dict.fromkeys(INFERENCE_PATHS, self._inference), **dict.fromkeys(fim.PATHS, self._fim.complete)}
        return {**get, **ollama_get}, {**inference, **post, **ollama_post}, {"/v1/stream": streams.stream}

    def _request_factory(self, loop: asyncio.AbstractEventLoop) -> Callable[..., web.BaseRequest]:
        request = request_class(self.cors)

        def make(message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> web.BaseRequest:
            return request(message, payload, protocol, writer, task, loop, client_max_size=MAX_BODY)
        return make

    @property
    def refusing(self) -> str | None:
        """Why the gateway refuses every request that needs a key (its keys could not be read), else None."""
        return None if self.keys is None else self.keys.unreadable

    async def start(self) -> None:
        """Bind the listener; raise GatewayStartError (port taken, unsafe bind). Keys that cannot be
        read do not stop it: it listens and refuses every request that needs a key, saying why."""
        self._use_keys(keyring_for(self.config, self.keys))
        self._pool = UpstreamPool(keepalive_s=self.config.upstream_keepalive_s)
        self._idle_task = asyncio.create_task(self.traffic.idle_loop(self.idle_check_interval_s))
        loop = asyncio.get_running_loop()
        # aiohttp's low-level server: the gateway routes by exact path itself, so a request skips
        # the Application's router, match info and middleware chain (a few µs of each stream)
        self._web = web.Server(self._dispatch, request_factory=self._request_factory(loop),
                               handler_cancellation=True, access_log=None)
        lane = Lane(
            paths=frozenset(INFERENCE_PATHS), route=self._route_plain, acquire=self._acquire_plain,
            finish=self._end_forward,
            pool=lambda: None if self._closing else self._pool, closing=lambda: self._closing,
            metrics=self.metrics, live=self._live, timeouts=self._stream_timeout, slow=self._web,
            conversations=self._conversations,
        )
        try:
            self._listeners = await open_listeners(lambda: FrontDoor(lane), self.config)
        except GatewayStartError:
            await self._shutdown_upstreams()
            raise
        self._lane = lane
        self._address = self._listeners.address
        self._self_address = self._listeners.self_address

    def reconfigure(self, config: GatewayConfig) -> list[str]:
        """Apply `config` (orchestrator.json read again) to the running gateway: keys and the TLS
        certificate (their files are read again), limits, timeouts, origins. Return the settings only
        a restart applies (enabled, host, port, HTTPS on or off), which keep their running values.
        Keys or a certificate it cannot use raise GatewayStartError, and then nothing changes, except
        that a gateway without keys before refuses every request that needs one (it fails closed)."""
        restart = [f for f in ("enabled", "host", "port") if getattr(config, f) != getattr(self.config, f)]
        if bool(config.tls_cert_file) != bool(self.config.tls_cert_file):
            restart += ["tls_cert_file", "tls_key_file"]  # HTTPS on or off: another listener
        config = config.model_copy(update={f: getattr(self.config, f) for f in restart})
        keys = keyring_for(config, running=self.keys)
        if keys.unreadable:
            self._use_keys(keys)  # closed at once, even if a certificate below cannot be used
        if self._listeners is not None and "tls_cert_file" not in restart:
            self._listeners.reload_certificate(config)
        self.config = self.traffic.config = config
        self._use_keys(keys)
        self.cors.allow(config.cors_origins)
        self._stream_timeout = _stream_timeouts(config)
        if self._lane is not None:
            self._lane.timeouts = self._stream_timeout
        if self._pool is not None:
            self._pool.keepalive_s = config.upstream_keepalive_s
        return restart

    def _use_keys(self, keys: Keyring) -> None:
        if keys.unreadable and (self.keys is None or keys.unreadable != self.keys.unreadable):
            logger.error("gateway: refusing every request that needs a key: %s", keys.unreadable)
        elif self.refusing and not keys.unreadable:
            logger.info("gateway: its API keys were read; requests with a valid key are served again")
        self.keys, self._check_host = keys, not keys.enabled

    async def stop(self) -> None:
        """Stop listening, end in-flight streams (with an SSE error event), close upstream sockets."""
        await self._shutdown_upstreams()
        if self._listeners is not None:
            listeners, self._listeners = self._listeners, None
            listeners.close()
        if self._lane is not None:
            self._lane.close()
        if self._web is not None:
            server, self._web = self._web, None
            await asyncio.sleep(0)  # requests read before the close start being handled first
            server.pre_shutdown()
            await server.shutdown(STOP_DRAIN_S)

    async def _shutdown_upstreams(self) -> None:
        self._closing = True
        if self._idle_task is not None:
            self._idle_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._idle_task
            self._idle_task = None
        await self.traffic.close()  # a request waiting for a replica is answered 503 (gateway.stopping)
        if self._pool is not None:  # closed first, so that no request cut below is sent again
            pool, self._pool = self._pool, None
            await pool.close()
        proxy.cut_all(self._live, "the gateway is shutting down")  # (answers and streams end saying so)
        if self._active:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), STOP_DRAIN_S)

    # --- plumbing --------------------------------------------------------------------------------
    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        """Route by method and exact path; every failure becomes an OpenAI-shaped error."""
        try:
            path, method = request.path, request.method
            if self._check_host:
                self.cors.check_host(request.headers.get("Host", ""))
            early = self.cors.screen(request)  # a preflight's answer, or 403 for a foreign origin
            if early is not None:
                return early
            routes = self._by_method.get(method)
            handler = routes.get(path) if routes is not None else None
            if handler is not None:
                return await handler(request)
            if path.startswith(MODEL_PREFIXES) and method in ("GET", "HEAD"):
                return await self._control.model(request, path.partition("/models/")[2])
            if path.startswith(NATIVE_PREFIX):
                return await self._native.route(request)
            if path in self._get or path in self._post:
                allowed = "GET, HEAD" if path in self._get else "POST"
                raise MethodNotAllowed(f"{method} is not allowed on {path}; use {allowed}", code="method_not_allowed",
                                       allow=allowed)
            raise not_served(path) if path.startswith(OLLAMA_PREFIX) else (  # /api/pull, /api/delete, ...
                NotFound(f"no route {path}; the gateway serves {SERVED}", code="route_not_found"))
        except HTTPFailure as exc:  # in Ollama's shape under its /api/, so that its SDKs show the message
            return error_response(exc) if request.path.startswith(OLLAMA_PREFIX) else to_response(exc)
        except web.HTTPException as exc:  # aiohttp's own, e.g. a body over the size limit
            if exc.status < 400:
                raise
            return to_response(HTTPFailure(exc.reason, status=exc.status))

    def _authorize(self, request: web.BaseRequest) -> Key | None:
        return None if self.keys is None else self.keys.admit(request.headers)

    @property
    def pool(self) -> UpstreamPool:
        if self._pool is None or self._closing:
            raise shutting_down()
        return self._pool

    # --- handlers --------------------------------------------------------------------------------
    async def _inference(self, request: web.BaseRequest) -> web.StreamResponse:
        started = time.perf_counter()
        key = self._authorize(request)
        body = await request.read()
        model, stream = requested_model(body, self.directory.upstreams, self.config.default_model,
                                        request.headers.get("Content-Type", ""))
        ups: list[Upstream] | None = None
        if key is not None:
            ups = self.directory.upstreams(model)
            if not key.allows(served_names(ups, model)):
                raise ModelNotFound(model, visible_models(self.directory.upstreams(), key))
        outcome = proxy.Outcome()
        refused: frozenset[str] = frozenset()
        keepalive_s = self.config.hold_keepalive_s
        held = HeldStream(request, model, keepalive_s, self.traffic.release, self.traffic.what_holds) \
            if stream and keepalive_s else None
        while True:
            try:
                acquiring = self.traffic.acquire(model, ups, refused)
                upstream = await (held.wait(acquiring) if held else acquiring)
                resp = await self._forward(request, upstream, model, body, outcome, held.response if held else None)
                break
            except HTTPFailure as exc:
                begun = held.response if held else None  # a held stream already answered 200
                if isinstance(exc, proxy.UpstreamRefused):
                    # a replica that died or restarted since the last health probe did no work
                    # on the request, so it goes to another ready replica, if there is one
                    refused |= {exc.instance}
                    ups = self.directory.upstreams(model)
                    if any(u.routable and u.name not in refused for u in routing.candidates(ups, model)):
                        continue
                    if isinstance(exc, proxy.UpstreamNotReady) and begun is None:
                        resp = exc.answer  # llama-server's own 503, as it said it
                        break
                self.metrics.observe(model_label(model, exc), request.path, exc.status, "gateway",
                                     time.perf_counter() - started)
                if begun is not None:
                    assert held is not None
                    return await held.fail(exc.message, exc.code)
                raise
            except ClientGone:
                assert held is not None and held.response is not None
                return held.response
        if outcome.first_byte_s is not None:
            self.metrics.observe_ttfb(model, outcome.first_byte_s)
        source = "stream_error" if outcome.stream_error else "upstream"
        self.metrics.observe(model, request.path, outcome.status, source, time.perf_counter() - started)
        return resp

    async def _forward(
        self, request: web.BaseRequest, upstream: Upstream, model: str, body: bytes, outcome: proxy.Outcome,
        started: web.StreamResponse | None,
    ) -> web.StreamResponse:
        """Relay one inference request for `model` to `upstream`, which `traffic.acquire` counted in flight."""
        self._begin_forward()
        self._conversations.note(request.headers, upstream.name, model)
        if upstream.rewrite_body is not None:
            body = upstream.rewrite_body(body, model)
        try:
            return await proxy.forward(
                self.pool, request, upstream, request.path_qs, body, self._stream_timeout, outcome,
                closing=lambda: self._closing, live=self._live, started=started,
            )
        finally:
            self._end_forward(upstream.name, outcome.evidence())

    def _end_forward(self, name: str, evidence: Evidence = None) -> None:
        self.traffic.release(name, evidence)
        self._active -= 1
        if not self._active:
            self._drained.set()

    def _route_plain(self, req: PlainRequest) -> tuple[Upstream | None, str] | None:
        """The fast lane's question (gateway.frontdoor): where does this request go? (replica,
        model): a free replica took it, counted in flight; (None, model): it must wait for a slot
        or a start (`_acquire_plain`); None: aiohttp's path serves it (a bad key, body or scope
        to answer, or a held stream, whose answer begins before its model is up)."""
        keys = self.keys
        key = None
        if keys is not None and keys.enabled:
            key = keys.match(presented_key(req.headers))
            if key is None:
                return None
        elif self._check_host and not local_host(req.headers.get("host", "")):
            return None
        if req.path in fim.PATHS and fim.wants_infill(req.body):
            return None  # a fill-in-the-middle completion, translated to /infill (gateway.fim)
        try:
            model, stream = requested_model(req.body, self.directory.upstreams, self.config.default_model,
                                            req.headers.get("content-type", ""))
        except HTTPFailure:
            return None
        ups = self.directory.upstreams(model)
        if key is not None and not key.allows(served_names(ups, model)):
            return None
        upstream = self.traffic.dispatch_now(model, ups)
        if upstream is None:
            return None if stream and self.config.hold_keepalive_s else (None, model)
        self._begin_forward()
        return upstream, model

    async def _acquire_plain(self, model: str) -> Upstream:
        upstream = await self.traffic.acquire(model)
        self._begin_forward()
        return upstream

    def _begin_forward(self) -> None:
        self._active += 1
        self._drained.clear()


def _stream_timeouts(config: GatewayConfig) -> upclient.Timeouts:
    """An inference request's upstream timeouts: connect, then `request_timeout_s` for any byte."""
    return upclient.Timeouts(connect=CONNECT_TIMEOUT_S, read=config.request_timeout_s)
