"""What is left of a config once its invalid fields are set aside, so that every check reading only
valid fields still runs: a bad port must not hide a missing model file or a port clash.

pydantic builds no model while any field is invalid. So the invalid fields (and those naming an
unset environment variable) are taken out, the required ones among them get a stand-in, and the
rest is validated again; the checks then skip whatever reads a field set aside (`Partial.known`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from llama_orchestrator.config.problems import field_loc
from llama_orchestrator.config.rules import CHECKED_APART

M = TypeVar("M", bound=BaseModel)
FieldPath = tuple[str, ...]

_PASSES = 3  # the first names every invalid field, the next builds the rest; one more to be safe
_ROOT: FieldPath = ()


@dataclass(frozen=True)
class Partial(Generic[M]):
    """A config built from the valid part of a file, and the dotted paths of the fields set aside."""

    config: M
    unknown: frozenset[str] = frozenset()

    def known(self, *fields: str) -> bool:
        """Whether each of `fields` (and everything in it) holds what the file says."""
        return not any(_overlap(u, f) for u in self.unknown for f in fields)


def _overlap(a: str, b: str) -> bool:
    return not a or a == b or b.startswith(a + ".") or a.startswith(b + ".")


def unknowable(model: type[M]) -> Partial[M]:
    """A file that could not be read at all: its defaults, none of them known."""
    return Partial(model(), frozenset({""}))


def aside_path(data: object, loc: Sequence[int | str]) -> FieldPath:
    """The field to set aside for an error (or an unset variable) at `loc`: a whole list rather
    than one item of it (its order matters: `args`), a dict entry whose key is bad, the key
    itself when it is missing."""
    path: list[str] = []
    current = data
    for part in field_loc(loc):
        if not isinstance(current, dict):
            break
        path.append(str(part))
        if str(part) not in current:
            break
        current = current[str(part)]
    return tuple(path)


def validate_partially(
    model: type[M],
    data: Mapping[str, Any],
    *,
    aside: Iterable[FieldPath] = (),
    stand_ins: Mapping[FieldPath, object] | None = None,
) -> tuple[Partial[M] | None, ValidationError | None]:
    """Validate `data` without the fields `aside`; on errors, set the invalid fields aside too
    and validate what is left. Returns the partial config (None when nothing sensible is left)
    and the first validation's error, which names every invalid field."""
    stand_ins = stand_ins or {}
    unknown = set(aside)
    first: ValidationError | None = None
    for _ in range(_PASSES):
        trimmed = _without(data, unknown)
        for path, value in stand_ins.items():  # once set aside: a missing one is first reported missing
            if any(_overlap(".".join(u), ".".join(path)) for u in unknown):
                _put(trimmed, path, value)
        try:
            config = model.model_validate(trimmed, context={CHECKED_APART: True})
        except ValidationError as exc:
            first = first or exc
            found = {aside_path(trimmed, error["loc"]) for error in exc.errors()}
            if _ROOT in found or found <= unknown:
                return None, first
            unknown |= found
            continue
        return Partial(config, frozenset(".".join(p) for p in unknown)), first
    return None, first


def _without(data: Mapping[str, Any], paths: Iterable[FieldPath]) -> dict[str, Any]:
    trimmed = copy.deepcopy(dict(data))
    for path in paths:
        parent: object = trimmed
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if path and isinstance(parent, dict):
            parent.pop(path[-1], None)
    return trimmed


def _put(data: dict[str, Any], path: FieldPath, value: object) -> None:
    parent = data
    for key in path[:-1]:
        if not isinstance(parent.get(key), dict):
            parent[key] = {}
        parent = parent[key]
    parent[path[-1]] = value
