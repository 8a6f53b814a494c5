"""What the gateway offers, and to whom: the model names a request may use, the `/v1/models`
list, and the names a scoped key must allow for a request to reach a model. Pure: built from
the directory's `Upstream` snapshots."""

from __future__ import annotations

from llama_orchestrator.core import routing
from llama_orchestrator.core.routing import Upstream
from llama_orchestrator.gateway.auth import Key


def available_models(upstreams: list[Upstream]) -> list[str]:
    """Every name a request may use: instance names and aliases, sorted, without duplicates."""
    names = {u.name for u in upstreams} | {u.alias for u in upstreams if u.alias}
    return sorted(names)


def served_names(ups: list[Upstream], model: str) -> set[str]:
    """`model` and every name and alias of the instances that serve it (what a key scope may list)."""
    return {model, *(n for u in routing.candidates(ups, model) for n in (u.name, u.alias))}


def model_list(ups: list[Upstream], key: Key | None = None) -> list[dict[str, object]]:
    """`/v1/models` entries: each instance by name, then each alias that is not an instance name."""
    data: list[dict[str, object]] = []
    names = {u.name for u in ups}
    for u in sorted(ups, key=lambda u: u.name):
        if key is not None and not key.allows({u.name, u.alias}):
            continue
        data.append({
            "id": u.name, "object": "model", "created": 0, "owned_by": "llama-orchestrator",
            "state": u.state.value, "routable": u.routable, "alias": u.alias, "on_demand": u.on_demand,
        })
    aliases: dict[str, list[Upstream]] = {}
    for u in ups:
        if u.alias and u.alias not in names:
            aliases.setdefault(u.alias, []).append(u)
    for alias, group in sorted(aliases.items()):
        if key is not None and not key.allows({alias, *(u.name for u in group)}):
            continue
        routable = any(u.routable for u in group)
        state = "ready" if routable else sorted(group, key=lambda u: u.name)[0].state.value
        data.append({
            "id": alias, "object": "model", "created": 0, "owned_by": "llama-orchestrator",
            "state": state, "routable": routable, "instances": sorted(u.name for u in group),
        })
    return data
