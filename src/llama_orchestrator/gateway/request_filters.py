"""An instance's `request_filters`: fields stripped from or set in each request body the gateway
routes to it by `model`, before the body goes upstream (llama-swap's filters). A model's
recommended sampling then holds whatever a chat UI sends by default. Its `variants` are further
names with filters of their own, applied after the instance's to requests that name them.

Only instances with filters pay for this: their bodies are parsed and written again. Every
other body goes upstream byte for byte as the client sent it, and so does anything sent to an
instance's own routes (`/instances/<name>/...`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

import orjson

from llama_orchestrator.config.models import RequestFilters

Rewrite = Callable[[bytes, str], bytes]  # (body, the model the request names) -> the body to send


def rewriter(filters: RequestFilters, variants: Mapping[str, RequestFilters] | None = None) -> Rewrite | None:
    """The body rewrite `filters` (and each variant's, after them) ask for, or None when they
    ask for nothing."""
    base = (filters,) if filters.active else ()
    plans = {name: base + ((v,) if v.active else ()) for name, v in (variants or {}).items()}
    if not base and not any(plans.values()):
        return None

    def rewrite(body: bytes, model: str) -> bytes:
        steps = plans.get(model, base)
        return _apply(body, steps) if steps else body

    return rewrite


def _apply(body: bytes, steps: tuple[RequestFilters, ...]) -> bytes:
    """`body` with each step's fields stripped, then set, in turn."""
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
    for filters in steps:
        for name in filters.strip_params:
            data.pop(name, None)
        data.update(filters.set_params)
    return dumps(data)


def _std_dumps(data: object) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
