"""The control API: loopback HTTP with a bearer token, what the CLI and the dashboard talk to.

Security (DESIGN section 6): bound to loopback by default; every request needs the token from
`<home>/run/control.json` (mode 0600), compared in constant time; the Host header must name a
loopback address (DNS rebinding) and any request carrying an Origin header is refused, since no
browser page has business here; state-changing calls must send JSON. Events and logs stream as
newline-delimited text, so clients follow them without polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from llama_orchestrator import __version__
from llama_orchestrator.config.files import write_json_atomic
from llama_orchestrator.config.orchestrator import ControlConfig
from llama_orchestrator.config.origins import host_name
from llama_orchestrator.daemon.protocol import ActionRequest
from llama_orchestrator.engine import follow, tail_lines
from llama_orchestrator.errors import (
    ConfigError,
    DaemonError,
    InstanceExistsError,
    InstanceNotFoundError,
    InvalidTransitionError,
    OrchestratorError,
)
from llama_orchestrator.store import EventRecord

if TYPE_CHECKING:
    from llama_orchestrator.daemon.service import Daemon

logger = logging.getLogger(__name__)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CLIENT_CHECK_S = 0.5  # how often a log follower checks that its client is still there


def error_response(exc: OrchestratorError) -> web.Response:
    """The one place daemon errors become HTTP: status by kind, body carries the CLI's exit code."""
    status = 400
    if isinstance(exc, InstanceNotFoundError):
        status = 404
    elif isinstance(exc, InstanceExistsError | InvalidTransitionError):
        status = 409
    elif isinstance(exc, ConfigError):
        status = 422
    body: dict[str, Any] = {"message": str(exc), "type": type(exc).__name__, "exit_code": exc.exit_code}
    if exc.hint:
        body["hint"] = exc.hint
    if isinstance(exc, ConfigError):
        body["problems"] = [
            {"file": p.file, "field": p.field, "message": p.message, "line": p.line, "column": p.column}
            for p in exc.problems
        ]
    return web.json_response({"error": body}, status=status)


def _problem(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "ControlError", "exit_code": 1}}, status=status)


def security_middleware(token: str) -> Any:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if host_name(request.headers.get("Host", "")) not in LOOPBACK_HOSTS:
            return _problem(421, "Host header must name a loopback address")
        if "Origin" in request.headers:
            return _problem(403, "browser requests are not allowed on the control API")
        supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(supplied.encode(), token.encode()):
            return _problem(401, "missing or wrong control token")
        if request.method == "POST" and request.content_type != "application/json":
            return _problem(415, "send JSON (Content-Type: application/json)")
        try:
            return await handler(request)
        except OrchestratorError as exc:
            return error_response(exc)

    return check


async def serve_control(daemon: Daemon, config: ControlConfig, control_file: Path) -> tuple[web.AppRunner, str]:
    """Listen with a new token, written with the address to `control_file` (mode 0600) for the
    CLI to find; the runner (to clean up) and the "host:port" listened on."""
    token = secrets.token_urlsafe(32)
    runner = web.AppRunner(build_app(daemon, token), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise DaemonError(f"control API cannot listen on {config.host}:{config.port}: {exc.strerror}") from exc
    sockets = getattr(site._server, "sockets", None) or []
    host, port = sockets[0].getsockname()[:2]
    write_json_atomic(control_file, {"pid": os.getpid(), "host": host, "port": port, "token": token,
                                     "version": __version__}, mode=0o600)
    return runner, f"{host}:{port}"


def build_app(daemon: Daemon, token: str) -> web.Application:
    app = web.Application(middlewares=[security_middleware(token)])
    routes = ControlRoutes(daemon)
    app.router.add_get("/v1/ping", routes.ping)
    app.router.add_get("/v1/status", routes.status)
    app.router.add_get("/v1/instances", routes.instances)
    app.router.add_get("/v1/instances/{name}", routes.inspect)
    app.router.add_delete("/v1/instances/{name}", routes.remove)
    app.router.add_get("/v1/instances/{name}/logs", routes.logs)
    app.router.add_post("/v1/actions/{action}", routes.act)
    app.router.add_get("/v1/events", routes.events)
    app.router.add_post("/v1/reload", routes.reload)
    app.router.add_post("/v1/shutdown", routes.shutdown)
    return app


class ControlRoutes:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    async def ping(self, request: web.Request) -> web.Response:
        """Cheap liveness check for clients (no per-instance sampling)."""
        return web.json_response({"pid": os.getpid()})

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(self.daemon.status().model_dump(mode="json"))

    async def instances(self, request: web.Request) -> web.Response:
        return web.json_response([s.model_dump(mode="json") for s in self.daemon.statuses()])

    async def inspect(self, request: web.Request) -> web.Response:
        detail = self.daemon.inspect(request.match_info["name"])
        return web.json_response(detail.model_dump(mode="json"))

    async def act(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        body = ActionRequest.model_validate(await request.json())
        result = await self.daemon.act(action, body.names, body.wait_s)
        return web.json_response(result.model_dump(mode="json"))

    async def remove(self, request: web.Request) -> web.Response:
        await self.daemon.remove(request.match_info["name"])
        return web.json_response({"removed": request.match_info["name"]})

    async def reload(self, request: web.Request) -> web.Response:
        problems = self.daemon.reload()
        await self.daemon.start_gateway_if_down()
        return web.json_response({"problems": [p.render() for p in problems]})

    async def shutdown(self, request: web.Request) -> web.Response:
        body = ActionRequest.model_validate(await request.json())
        self.daemon.request_shutdown(keep_instances=body.keep_instances)
        return web.json_response({"stopping": True, "keep_instances": body.keep_instances})

    async def events(self, request: web.Request) -> web.StreamResponse:
        """History after `after`, then (with follow=1) every new transition as one JSON line."""
        instance = request.query.get("instance") or None
        after = int(request.query.get("after", "0"))
        limit = int(request.query.get("limit", "1000"))
        tail = int(request.query["tail"]) if "tail" in request.query else None
        follow_on = request.query.get("follow") == "1"
        queue = self.daemon.hub.subscribe() if follow_on else None
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        try:
            last = after
            if after < 0:  # only what happens from now on (e.g. progress of a command about to be sent)
                last = self.daemon.store.last_event_id()
            if tail is not None:  # the newest `tail` events, then (with follow) what comes next
                history = self.daemon.store.recent_events(instance, tail)
            else:
                history = self.daemon.store.list_events(instance, after, limit) if after >= 0 else []
            for event in history:
                await response.write(_event_line(event))
                last = event.id
            while queue is not None:
                item = await queue.get()
                if item is None:
                    break
                if item.id <= last or (instance and item.instance != instance):
                    continue
                await response.write(_event_line(item))
                last = item.id
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            if queue is not None:
                self.daemon.hub.unsubscribe(queue)
        return response

    async def logs(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = self.daemon.log_path(name)
        lines = int(request.query.get("n", "100"))
        response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        await response.prepare(request)
        with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
            if request.query.get("follow") == "1":
                await self._follow_while_wanted(request, response, path, lines)
            else:
                for line in tail_lines(path, lines):
                    await response.write((line + "\n").encode())
        return response

    async def _follow_while_wanted(self, request: web.Request, response: web.StreamResponse, path: Path,
                                   lines: int) -> None:
        """Follow the log until the client goes or the daemon stops.

        A quiet log (a stopped instance) gives the follower nothing to write, so it would never
        notice a closed connection (aiohttp does not cancel a handler when its client leaves): it
        would poll the file until the daemon stops, and then hold the stop up for aiohttp's whole
        shutdown timeout. The dashboard opens and closes one such stream per selected instance.
        """

        async def pump() -> None:
            async for line in follow(path, from_end_lines=lines):
                await response.write((line + "\n").encode())

        async def until_unwanted() -> None:
            stopping = self.daemon.hub.subscribe()  # hub.close() sends None: the daemon is stopping
            try:
                while request.transport is not None and not request.transport.is_closing():
                    with contextlib.suppress(TimeoutError):
                        if await asyncio.wait_for(stopping.get(), CLIENT_CHECK_S) is None:
                            return
            finally:
                self.daemon.hub.unsubscribe(stopping)

        tasks = {asyncio.ensure_future(pump()), asyncio.ensure_future(until_unwanted())}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result


def _event_line(event: EventRecord) -> bytes:
    # EventRecord and the wire's EventOut have the same fields; the protocol stays free of the store.
    return (json.dumps(dataclasses.asdict(event)) + "\n").encode()
