"""What the gateway offers, and to whom: the model names a request may use, the model a request
asks for, the `/v1/models` list, and the names a scoped key must allow for a request to reach a
model. Pure: built from the directory's `Upstream` snapshots.

Key scopes: a key scoped to an instance's own names (its name, model.alias or model.aliases) may
use the instance and all of its variants (they are the same loaded model), its own routes
(`/instances/<name>/...`) included; a key scoped to a variant only that variant, with its
filters, and none of the instance's own routes (they skip the variant's filters)."""

from __future__ import annotations

import json
from collections.abc import Callable

import orjson

from llama_orchestrator.core import routing
from llama_orchestrator.core.routing import Upstream
from llama_orchestrator.core.states import InstanceState as S
from llama_orchestrator.gateway import multipart
from llama_orchestrator.gateway.auth import Key
from llama_orchestrator.gateway.errors import BadRequest


def available_models(upstreams: list[Upstream]) -> list[str]:
    """Every name a request may use, of the listed instances: names and aliases, sorted, without
    duplicates (what an error offers; an `unlisted` instance is not offered)."""
    return sorted({n for u in upstreams if u.listed for n in u.names if n})


def visible_models(upstreams: list[Upstream], key: Key | None) -> list[str]:
    """`available_models` that `key` may use (all of them without a key): what a 404 lists."""
    return [m for m in available_models(upstreams) if key is None or key.allows(served_names(upstreams, m))]


def own_names(u: Upstream) -> set[str]:
    """The instance's own names: its name, alias and further aliases, not its variants' names
    (what a key scope must list to reach the instance as such)."""
    return {n for n in u.names if n not in u.variants}


def served_names(ups: list[Upstream], model: str) -> set[str]:
    """`model` and the own names of every instance that serves it: a key scope that lists one of
    them may use `model` (a variant's name widens no scope: see the module's docstring)."""
    return {model, *(n for u in routing.candidates(ups, model) for n in own_names(u))}


def model_list(ups: list[Upstream], key: Key | None = None, unlisted: bool = False) -> list[dict[str, object]]:
    """`/v1/models` entries: each instance by name, then each alias (and further alias) that is not
    an instance name; `unlisted` instances only when asked for (one entry retrieved by its id).
    `created` is the model file's last change (0 when unknown). `routable` answers a client's
    question, whether a request for the id is served (`serves_requests`); whether the model is
    up now is `state` and `status`."""
    if not unlisted:
        ups = [u for u in ups if u.listed]
    data: list[dict[str, object]] = []
    names = {u.name for u in ups}
    for u in sorted(ups, key=lambda u: u.name):
        if key is not None and not key.allows(own_names(u)):
            continue
        data.append({
            "id": u.name, "object": "model", "created": int(u.model_mtime), "owned_by": "llama-orchestrator",
            "state": u.state.value, "routable": serves_requests([u]), "alias": u.alias, "on_demand": u.on_demand,
            "status": load_status([u]),
            **({"aliases": list(u.aliases)} if u.aliases else {}),
        })
    aliases: dict[str, list[Upstream]] = {}
    for u in ups:
        for alias in dict.fromkeys(u.names[1:]):
            if alias and alias not in names:
                aliases.setdefault(alias, []).append(u)
    for alias, group in sorted(aliases.items()):
        if key is not None and not key.allows(served_names(group, alias)):
            continue
        state = "ready" if any(u.routable for u in group) else sorted(group, key=lambda u: u.name)[0].state.value
        data.append({
            "id": alias, "object": "model", "created": int(max(u.model_mtime for u in group)),
            "owned_by": "llama-orchestrator",
            "state": state, "routable": serves_requests(group), "status": load_status(group),
            "instances": sorted(u.name for u in group),
        })
    return data


def serves_requests(group: list[Upstream]) -> bool:
    """Whether a request for a model served by `group` is served: at once, once the replica on its
    way up is ready, or once the on-demand one it starts is (the gateway's own admission decides,
    so the list and the routing cannot disagree). Not when each is stopped (and not on demand),
    failed or unhealthy: such a request gets 503."""
    return not isinstance(routing.admit(group, queued=0, queue_size=1), routing.Unavailable)


_LOADED = frozenset({S.READY, S.UNHEALTHY})
_LOADING = frozenset({S.STARTING, S.RECONCILING, S.BACKOFF})


def load_status(group: list[Upstream]) -> dict[str, object]:
    """A model's `status` as llama-server's router mode reports it, so that its clients (which
    poll `/models` for `status.value`) can follow loads and unloads: "loaded" if any of the
    instances serving it is up, else "loading" if one is on its way up, else "unloaded" (with
    `failed` when every one of them failed to start)."""
    if any(u.state in _LOADED or (u.state is S.STOPPING and not u.restarting) for u in group):
        return {"value": "loaded"}  # (a stopping instance still holds its model until it exits)
    if any(u.state in _LOADING or u.restarting for u in group):
        return {"value": "loading"}
    if group and all(u.state is S.FAILED for u in group):
        return {"value": "unloaded", "failed": True}
    return {"value": "unloaded"}


def requested_model(
    body: bytes, upstreams: Callable[[], list[Upstream]], default: str | None = None, content_type: str = ""
) -> tuple[str, bool]:
    """The model a request body names (else `default`, else the only one served) and whether it
    asks to stream; BadRequest for a body that is not a JSON object (or a form: a transcription's
    fields) or a missing model when several are served and no default is set."""
    parsed: object
    if multipart.is_form(content_type):
        fields = multipart.form_fields(body, content_type)
        parsed = {**fields, "stream": fields.get("stream", "").strip().lower() == "true"}
    else:
        parsed = parse_json(body) if body else {}
    if not isinstance(parsed, dict):
        raise BadRequest("the request body must be a JSON object", code="invalid_json")
    model = parsed.get("model")
    stream = parsed.get("stream") is True
    if isinstance(model, str) and model:
        return model, stream
    if model is not None and not isinstance(model, str):
        raise BadRequest("`model` must be a string", code="invalid_model", param="model")
    ups = upstreams()
    chosen = routing.default_model(ups, default)
    if chosen is None:
        raise BadRequest(
            "the request has no `model` and more than one model is served; choose one of: "
            + ", ".join(available_models(ups)) + " (or set gateway.default_model in orchestrator.json)",
            code="model_required", param="model",
        )
    return chosen, stream


def parse_json(body: bytes) -> object:
    """`read_json`, with BadRequest (400 `invalid_json`) for a body that is not JSON."""
    try:
        return read_json(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}", code="invalid_json") from exc


def read_json(body: bytes) -> object:
    """`body` parsed: by orjson (a 211 KiB prompt in 86 us instead of 236), or by the standard
    library for what orjson refuses and llama-server accepts (NaN). Only `model` and `stream`
    are read from it: the body goes upstream as the client sent it."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)
