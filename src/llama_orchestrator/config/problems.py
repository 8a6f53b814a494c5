"""pydantic's validation errors as config problems a user can act on: the field path, the rule,
and the nearest valid key for a misspelt one."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence

from pydantic import BaseModel, ValidationError

from llama_orchestrator.errors import ConfigProblem


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _model_at(model: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """Walk nested model fields along `loc` to find which model owns the last key."""
    current: type[BaseModel] = model
    for part in loc:
        fields = {(f.alias or n): f for n, f in current.model_fields.items()}
        info = fields.get(str(part))
        annotation = info.annotation if info else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            current = annotation
        else:
            return None
    return current


_TYPE_TAG = re.compile(r"^(int|str|float|bool|none|literal\[.*\]|list\[.*\]|dict\[.*\]|function-.*)$")
_DICT_KEY = "[key]"  # pydantic's location of a bad key, after the key itself


def field_loc(loc: Sequence[int | str]) -> list[int | str]:
    """An error's location as the config's field path: the type tags of union alternatives and
    the marker of a bad dict key left out."""
    return [p for p in loc if not (isinstance(p, str) and (_TYPE_TAG.match(p) or p == _DICT_KEY))]


def problems_from_validation(
    exc: ValidationError, file: str, model: type[BaseModel], prefix: str = ""
) -> list[ConfigProblem]:
    """Turn pydantic's errors into problems: field path, rule, and a suggestion for typos.

    A field with a union type yields one error per alternative, tagged with the type in the
    location; those are merged into one problem ("must be an integer, or 'auto' or 'all'").
    """
    merged: dict[str, list[str]] = {}
    for error in exc.errors():
        loc = field_loc(error["loc"])
        path = prefix + ".".join(str(p) for p in loc)
        if error["type"] == "extra_forbidden":
            owner = _model_at(model, loc[:-1])
            valid = _field_names(owner) if owner else []
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.6)
            hint = f"; valid keys: {', '.join(valid)}" if valid else ""
            if close:
                hint = f"; did you mean {close[0]!r}?"
            message = f"unknown key {str(loc[-1])!r}{hint}"
        elif error["type"] == "missing":
            message = "required field is missing"
        else:
            message = error["msg"].removeprefix("Value error, ")
        messages = merged.setdefault(path, [])
        if message not in messages:
            messages.append(message)
        if "input" in error and error["type"] not in ("missing", "extra_forbidden", "value_error"):
            got = f"got {json.dumps(error['input'], default=str)[:60]}"
            if got not in messages:
                messages.append(got)
    problems = []
    for path, messages in merged.items():
        inputs = [m for m in messages if m.startswith("got ")]
        rules = [m for m in messages if not m.startswith("got ")]
        text = " or ".join(rules) + (f" ({inputs[0]})" if inputs else "")
        problems.append(ConfigProblem(file, path, text))
    return problems
