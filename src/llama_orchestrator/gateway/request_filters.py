"""An instance's `request_filters`: fields stripped from or set in each request body the gateway
routes to it by `model`, before the body goes upstream (llama-swap's filters). A model's
recommended sampling then holds whatever a chat UI sends by default.

Only instances with filters pay for this: their bodies are parsed and written again. Every
other body goes upstream byte for byte as the client sent it, and so does anything sent to an
instance's own routes (`/instances/<name>/...`).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import orjson

from llama_orchestrator.config.models import RequestFilters

Rewrite = Callable[[bytes], bytes]


def rewriter(filters: RequestFilters) -> Rewrite | None:
    """The body rewrite `filters` ask for, or None when they ask for nothing."""
    if not filters.active:
        return None
    strip = tuple(filters.strip_params)
    fields = dict(filters.set_params)

    def rewrite(body: bytes) -> bytes:
        dumps: Callable[[object], bytes] = orjson.dumps
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:  # NaN, which llama-server accepts: keep it as it came
            try:
                data, dumps = json.loads(body), _std_dumps
            except (ValueError, UnicodeDecodeError):
                return body  # not JSON: llama-server answers it as it would have
        if not isinstance(data, dict):
            return body
        for name in strip:
            data.pop(name, None)
        data.update(fields)
        return dumps(data)

    return rewrite


def _std_dumps(data: object) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
