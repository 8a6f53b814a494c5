"""Reading llama-server's log: why a start failed, and whether loading is still advancing (pure).

llama-server exits 1 for a bad model, a taken port and a bad argument alike, so the exit code
cannot tell them apart; the last lines of its log can (reliability reference, section 1e).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class FailureKind(StrEnum):
    MODEL_LOAD = "model-load-error"
    PORT_IN_USE = "port-in-use"
    BAD_ARGUMENT = "bad-argument"
    UNKNOWN = "unknown"

    @property
    def is_permanent(self) -> bool:
        """Retrying cannot help: the instance goes to `failed` after one attempt."""
        return self is not FailureKind.UNKNOWN


@dataclass(frozen=True, slots=True)
class Failure:
    kind: FailureKind
    detail: str


_PATTERNS: tuple[tuple[FailureKind, re.Pattern[str]], ...] = (
    (
        FailureKind.MODEL_LOAD,
        re.compile(r"exiting due to model loading error|failed to load model|error loading model"),
    ),
    (FailureKind.PORT_IN_USE, re.compile(r"couldn't bind HTTP server socket|exiting due to HTTP server error")),
    (FailureKind.BAD_ARGUMENT, re.compile(r"error: invalid argument|error while handling argument|unknown argument")),
)

#: Lines llama-server prints while loading weights; seeing new ones extends the start deadline.
_PROGRESS = re.compile(
    r"llama_model_loader|load_tensors|llm_load|print_info|loading model|llama_context|llama_kv_cache"
    r"|warming up|common_init|srv +load_model|^\.+\s*$|done_getting_tensors"
)


def classify_exit(log_tail: Iterable[str]) -> Failure:
    """Classify a failed start from the last lines of its log (most specific match wins)."""
    lines = list(log_tail)
    for kind, pattern in _PATTERNS:
        for line in reversed(lines):
            if pattern.search(line):
                return Failure(kind, _detail(kind, lines, line))
    last = next((_clean(line) for line in reversed(lines) if line.strip()), "no output")
    return Failure(FailureKind.UNKNOWN, last)


#: llama.cpp's log prefix ("0.00.008.192 E "), which says nothing to a user reading a reason.
_LOG_PREFIX = re.compile(r"^\s*\d+\.\d+\.\d+\.\d+ [A-Z] +")
#: For a model that does not load, the lines that say *why*, most telling first.
_MODEL_WHY = ("invalid magic", "failed to open", "No such file", "failed to read", "error loading model")


def _clean(line: str) -> str:
    return _LOG_PREFIX.sub("", line).strip()[:300]


def _detail(kind: FailureKind, lines: list[str], matched: str) -> str:
    if kind is FailureKind.MODEL_LOAD:
        # The line that says why comes before the generic "exiting due to …" line.
        for needle in _MODEL_WHY:
            for line in lines:
                if needle in line:
                    return _clean(line)
    return _clean(matched)


def is_loading_progress(line: str) -> bool:
    """True for a log line that shows the model load is still moving forward."""
    return bool(_PROGRESS.search(line))
