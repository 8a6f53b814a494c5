"""The gateway's own errors, and the one place any error becomes an HTTP response.

Every error the gateway produces has the OpenAI shape, so SDKs show its message:

    {"error": {"message": ..., "type": ..., "code": ..., "param": ...}, "source": "gateway"}

and carries the header `X-Llama-Orch-Source: gateway`. Errors produced by a llama-server are
not built here: the proxy passes them through unchanged with `X-Llama-Orch-Source: upstream`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aiohttp import web

from llama_orchestrator.errors import OrchestratorError, UpstreamError

SOURCE_HEADER = "X-Llama-Orch-Source"
INSTANCE_HEADER = "X-Llama-Orch-Instance"


class GatewayStartError(OrchestratorError):
    """The gateway cannot listen: port taken, address refused, keys missing for a public bind."""


class KeysUnreadable(GatewayStartError):
    """A configured key source (gateway.api_keys_env or api_keys_file) cannot be read or holds no
    key; `hint` says how to fix it. The gateway then keeps the keys it had, or refuses every request."""


class HTTPFailure(OrchestratorError):
    """A request the gateway answers with an error; raised anywhere below a handler."""

    status: int = 500
    type: str = "server_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after_s: int | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.retry_after_s = retry_after_s
        if status is not None:
            self.status = status


class BadRequest(HTTPFailure):
    status = 400
    type = "invalid_request_error"


class Unauthorized(HTTPFailure):
    status = 401
    type = "authentication_error"


class Forbidden(HTTPFailure):
    status = 403
    type = "permission_error"


class ModelNotFound(HTTPFailure):
    status = 404
    type = "invalid_request_error"

    def __init__(self, model: str, available: list[str]) -> None:
        names = ", ".join(available) if available else "(none configured)"
        super().__init__(
            f"The model {model!r} does not exist. Available models: {names}", code="model_not_found", param="model"
        )
        self.available = available


class NotFound(HTTPFailure):
    status = 404
    type = "not_found_error"


class MethodNotAllowed(HTTPFailure):
    status = 405
    type = "invalid_request_error"

    def __init__(self, message: str, *, code: str, allow: str) -> None:
        super().__init__(message, code=code)
        self.allow = allow


class Overloaded(HTTPFailure):
    status = 429
    type = "rate_limit_error"


class Unavailable(HTTPFailure):
    """The model is loading, stopped, failed or unreachable (503, usually with Retry-After)."""

    status = 503
    type = "unavailable_error"


SHUTDOWN_RETRY_AFTER_S = 5


def shutting_down() -> Unavailable:
    """What a request the gateway can no longer serve is told while it stops: one waiting for a
    replica (a slot, a load, room) is answered this before its connection closes."""
    return Unavailable("the gateway is shutting down", code="shutting_down", retry_after_s=SHUTDOWN_RETRY_AFTER_S)


def error_body(status: int, kind: str, message: str, code: str | None, param: str | None) -> bytes:
    return json.dumps(
        {"error": {"message": message, "type": kind, "code": code, "param": param}, "source": "gateway"},
        separators=(",", ":"),
    ).encode()


def to_response(exc: BaseException) -> web.Response:
    """The HTTP answer for an error raised while handling a request (the only mapping there is)."""
    if isinstance(exc, HTTPFailure):
        status, kind, message, code, param = exc.status, exc.type, exc.message, exc.code, exc.param
        retry = exc.retry_after_s
    elif isinstance(exc, UpstreamError):
        status, kind, message, code, param, retry = 502, "upstream_error", str(exc), "bad_gateway", None, 2
    elif isinstance(exc, OrchestratorError):
        status, kind, message, code, param, retry = 500, "server_error", str(exc), None, None, None
    else:
        status, kind, message, code, param, retry = 500, "server_error", "internal gateway error", None, None, None
    headers: dict[str, str] = {SOURCE_HEADER: "gateway"}
    if retry is not None:
        headers["Retry-After"] = str(retry)
    if isinstance(exc, MethodNotAllowed):
        headers["Allow"] = exc.allow
    return web.Response(
        status=status,
        body=error_body(status, kind, message, code, param),
        content_type="application/json",
        headers=headers,
    )


def message_of(body: bytes, limit: int = 500) -> str:
    """The message of an error answer in the OpenAI shape (llama-server's, the gateway's), else
    the start of the body as text."""
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return body.decode("utf-8", "replace")[:limit]


def sse_error_event(message: str, kind: str = "upstream_error", code: str | None = "stream_interrupted") -> bytes:
    """The last event of a stream the gateway had to cut (upstream died, gateway stopping)."""
    payload: Mapping[str, object] = {
        "error": {"message": message, "type": kind, "code": code, "param": None},
        "source": "gateway",
    }
    return b"event: error\ndata: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
