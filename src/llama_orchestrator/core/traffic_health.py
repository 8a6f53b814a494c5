"""Passive health: what the gateway's own requests say about an instance (pure; time passed in).

`/health` answers 200 while every completion fails (hermes-agent#104050, llama-swap#125), and the
deep probe runs only while idle, once a minute at most, if it is on at all. The gateway sees every
request it forwards, so:
- a run of `threshold` requests in a row that failed on the server's side (a 5xx of its own, a
  connection cut or refused, no byte within the timeout) asks for a one-token canary at once; if
  the canary fails too the instance is unhealthy and restarted, and if it passes the failures
  were the requests' own (a prompt llama-server chokes on), so nothing is restarted;
- a request the server answered counts as a passed deep probe: a busy instance is not probed
  besides (peers.md section 3.1 d).

The `Evidence` a request leaves: None says nothing (the client left first, another lane took the
request over), `ANSWERED` ("") says the server answered, any other text says how it failed.
"""

from __future__ import annotations

import json

Evidence = str | None
ANSWERED = ""
MESSAGE_CHARS = 200


def status_evidence(status: int, body: bytes = b"") -> Evidence:
    """The evidence of an answer with HTTP `status` (and, when read whole, `body`) from llama-server
    itself: 503 is its "loading model", which the health probes see; 501 a feature it was not
    started with (a client's error). A failure names llama-server's own message when it gave one."""
    if status == 503:
        return None
    if status < 500 or status == 501:
        return ANSWERED
    message = _error_message(body)
    return f"it answered HTTP {status}: {message}" if message else f"it answered HTTP {status}"


def _error_message(body: bytes) -> str:
    """`error.message` of llama-server's (OpenAI-shaped) error body, shortened; "" without one."""
    try:
        error = json.loads(body).get("error") if body else None
    except (ValueError, AttributeError):
        return ""
    message = error.get("message") if isinstance(error, dict) else None
    return message[:MESSAGE_CHARS] if isinstance(message, str) else ""


class TrafficHealth:
    """One instance's run of failed requests; owned by its supervisor, reset with each new process."""

    __slots__ = ("answered_at", "canary_at", "canary_running", "failures", "last_failure", "threshold")

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold  # 0: passive health is off
        self.failures = 0  # requests in a row that failed on the server's side
        self.last_failure = ""
        self.answered_at: float | None = None  # the last request the server answered (monotonic s)
        self.canary_at: float | None = None
        self.canary_running = False

    def note(self, evidence: Evidence, now: float, canary_every_s: float, ready: bool = True) -> bool:
        """Count one request's evidence; True when a canary should run now: only while `ready`, one
        at a time, one per `canary_every_s` (a client sending bad prompts must not flood the server)."""
        if evidence is None:
            return False
        if evidence == ANSWERED:
            self.failures = 0
            self.answered_at = now
            return False
        self.failures += 1
        self.last_failure = evidence
        if not ready or not self.threshold or self.failures < self.threshold or self.canary_running:
            return False
        if self.canary_at is not None and now - self.canary_at < canary_every_s:
            return False
        self.canary_running = True
        self.canary_at = now
        return True

    def describe(self) -> str:
        return f"{self.failures} gateway requests in a row failed (the last: {self.last_failure})"

    def canary_done(self) -> None:
        """The canary's verdict is in: the count starts again."""
        self.canary_running = False
        self.failures = 0

    def deep_probe_due(self, last_deep: float, now: float, interval_s: float) -> bool:
        """A deep probe is due when neither it nor an answered request came within `interval_s`."""
        latest = last_deep if self.answered_at is None else max(last_deep, self.answered_at)
        return now - latest >= interval_s


def canary_request(embeddings: bool, args: list[str]) -> tuple[str, dict[str, object]]:
    """The smallest request of the kind this server exists for: (path, JSON body). An embedding
    model may not generate at all, and /rerank answers 501 unless the server runs with --reranking."""
    if "--reranking" in args or "--rerank" in args:
        return "/rerank", {"query": "a", "documents": ["a"]}
    if embeddings or "--embeddings" in args or "--embedding" in args:
        return "/embedding", {"content": "a"}
    return "/completion", {"prompt": "a", "n_predict": 1, "cache_prompt": False}


def busy_slots(body: bytes) -> int | None:
    """How many slots llama-server's `/slots` answer says are processing; None when it is not
    that answer (a server started with --no-slots answers 501, an older one another shape)."""
    try:
        slots = json.loads(body)
    except ValueError:
        return None
    if not isinstance(slots, list) or not all(isinstance(s, dict) for s in slots):
        return None
    return sum(1 for s in slots if s.get("is_processing") is True)
