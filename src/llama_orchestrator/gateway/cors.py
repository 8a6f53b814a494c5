"""Browsers at the gateway: what lets a web page, or a desktop app's web view, call it, and
what stops a web site from using it behind its user's back.

A browser sends `Origin` with a cross-origin request, and before a request with a key or a
JSON body it sends an `OPTIONS` preflight that carries no key. So the gateway:
- answers a preflight itself, without asking for a key;
- refuses any origin outside `gateway.cors_origins` with 403, before doing any work (a page on
  some web site cannot make the machine load a model);
- marks every answer to an allowed origin with `Access-Control-Allow-Origin`, errors and
  streams included, so the page can read them.
Requests without `Origin` (SDKs, curl) are untouched, and never leave the front door's fast lane
(gateway.http1 hands any request with `Origin` to aiohttp). llama-server's own CORS headers are
never relayed (the proxy builds its answers' headers), so none appears twice.

A gateway without keys also answers only requests whose Host names this machine
(`config.origins.local_host`): a site that points its own name at 127.0.0.1 (DNS rebinding)
makes the browser treat the gateway as that site, so no Origin check would see it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from aiohttp import web

from llama_orchestrator.config.origins import local_host, origin_matcher
from llama_orchestrator.gateway.errors import INSTANCE_HEADER, SOURCE_HEADER, Forbidden

ALLOW_METHODS = "GET, HEAD, POST, DELETE, OPTIONS"  # DELETE: /v1/stream (a conversation's stream stopped)
DEFAULT_ALLOW_HEADERS = "Authorization, Content-Type, X-Api-Key"
EXPOSE_HEADERS = f"Retry-After, {SOURCE_HEADER}, {INSTANCE_HEADER}"
MAX_AGE_S = 600  # how long a browser may reuse a preflight's answer
TELL_AT_MOST = 64  # refused origins and Hosts named in the daemon log

logger = logging.getLogger(__name__)


class Cors:
    def __init__(self, origins: Iterable[str]) -> None:
        self.allow(origins)
        self._told: set[str] = set()

    def allow(self, origins: Iterable[str]) -> None:
        """Allow exactly `origins` from now on (gateway.cors_origins, read again on a reload)."""
        self.allows = origin_matcher(origins)

    def check(self, origin: str) -> None:
        """Raise Forbidden (403) for an origin that may not call the gateway."""
        if not self.allows(origin):
            self._tell(f"origin {origin}", "not in gateway.cors_origins")
            raise Forbidden(
                f"origin {origin} may not call this gateway; to let it, add it to gateway.cors_origins in "
                "orchestrator.json, then run any llama-orch command (llama-orch up applies it)",
                code="origin_not_allowed",
            )

    def check_host(self, host: str) -> None:
        """Raise Forbidden (403) for a Host header that does not name this machine (DNS rebinding)."""
        if not local_host(host):
            self._tell(f"Host {host!r}", "not a name of this machine, and the gateway has no keys")
            raise Forbidden(
                f"Host {host!r} does not name this machine, and a gateway without API keys answers only "
                "localhost, an IP address, a name without a dot, this machine's name or a "
                ".localhost/.local/.internal name (a web site could otherwise reach it by pointing its own name "
                "at 127.0.0.1); set gateway.api_keys_env or gateway.api_keys_file to serve other names",
                code="host_not_allowed",
            )

    def _tell(self, who: str, why: str) -> None:
        """Name a refused caller in the daemon log, once (a page sees only "CORS error")."""
        if who not in self._told and len(self._told) < TELL_AT_MOST:
            self._told.add(who)
            logger.warning("gateway: refused requests from %s (%s)", who, why)

    def screen(self, request: web.BaseRequest) -> web.Response | None:
        """Before routing: the answer to an OPTIONS request (a preflight, or a plain question of
        what the gateway allows), None to go on; Forbidden for a foreign origin."""
        origin = request.headers.get("Origin")
        if origin is not None:
            self.check(origin)
            if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
                return self.preflight(request.headers)
        if request.method == "OPTIONS":
            return web.Response(status=204, headers={"Allow": ALLOW_METHODS, SOURCE_HEADER: "gateway"})
        return None

    def preflight(self, request_headers: Mapping[str, str]) -> web.Response:
        """The answer to an allowed origin's `OPTIONS` preflight: any method the gateway serves,
        the headers the page asked to send (the OpenAI SDK adds its own x-stainless-* ones)."""
        headers = {  # + Access-Control-Allow-Origin, as on every answer to the origin (`mark`)
            "Access-Control-Allow-Methods": ALLOW_METHODS,
            "Access-Control-Allow-Headers": request_headers.get("Access-Control-Request-Headers")
            or DEFAULT_ALLOW_HEADERS,
            "Access-Control-Max-Age": str(MAX_AGE_S),
            "Vary": "Access-Control-Request-Headers",
            SOURCE_HEADER: "gateway",
        }
        if request_headers.get("Access-Control-Request-Private-Network", "").lower() == "true":
            headers["Access-Control-Allow-Private-Network"] = "true"  # Chrome's check for pages on public sites
        return web.Response(status=204, headers=headers)

    def mark(self, response: web.StreamResponse, origin: str) -> None:
        """Let the page at an allowed `origin` read this answer (and its gateway headers)."""
        headers = response.headers
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        headers.add("Vary", "Origin")


def request_class(cors: Cors) -> type[web.BaseRequest]:
    """aiohttp's request, marking each answer for an allowed origin as it is prepared (a stream's
    head leaves before its handler returns, so this cannot wait until then)."""

    class CorsRequest(web.BaseRequest):
        async def _prepare_hook(self, response: web.StreamResponse) -> None:
            origin = self.headers.get("Origin")
            if origin is not None and cors.allows(origin):
                cors.mark(response, origin)

    return CorsRequest
