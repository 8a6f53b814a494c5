"""The gateway's Prometheus text: its own counters and histograms, instance states, and the
children's llama.cpp metrics relabelled with `instance` and `model` (written by hand: the
format is small and a client library would be a dependency for a few dozen lines).

Exposition format 0.0.4: one `# HELP` and `# TYPE` per family, then its samples; families from
several children are merged so each name appears once.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from llama_orchestrator.core.routing import Upstream
from llama_orchestrator.core.states import InstanceState
from llama_orchestrator.gateway.errors import ModelNotFound

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
TTFB_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
UNKNOWN_MODEL = "(unknown)"  # the `model` label of requests for a model the gateway does not serve


def model_label(model: str, failure: BaseException | None = None) -> str:
    """The `model` label of a request for `model` that ended with `failure` (None: it was answered):
    UNKNOWN_MODEL when the gateway does not serve `model` (404 model_not_found), so that the labels
    are bounded by the configured names, not by what clients send (each new one was a new series,
    kept until the daemon restarts)."""
    return UNKNOWN_MODEL if isinstance(failure, ModelNotFound) else model


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return "{" + inner + "}" if inner else ""


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@dataclass(slots=True)
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.buckets, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.total += value
        self.count += 1

    def lines(self, name: str, labels: list[tuple[str, str]]) -> list[str]:
        out, cumulative = [], 0
        for bound, n in zip(self.buckets, self.counts, strict=True):
            cumulative += n
            out.append(f"{name}_bucket{_labels([*labels, ('le', _num(bound))])} {cumulative}")
        out.append(f"{name}_bucket{_labels([*labels, ('le', '+Inf')])} {self.count}")
        out.append(f"{name}_sum{_labels(labels)} {_num(self.total)}")
        out.append(f"{name}_count{_labels(labels)} {self.count}")
        return out


def _histogram(table: dict[str, Histogram], model: str, buckets: tuple[float, ...]) -> Histogram:
    """`model`'s histogram in `table`, made on first use (not setdefault: that builds one per call)."""
    histogram = table.get(model)
    if histogram is None:
        histogram = table[model] = Histogram(buckets)
    return histogram


class GatewayMetrics:
    """Counters kept in memory for the life of the gateway (reset when the daemon restarts)."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = {}  # (model, route, status) -> n
        self.errors: dict[tuple[str, str], int] = {}  # (model, source) -> n
        self.latency: dict[str, Histogram] = {}
        self.ttfb: dict[str, Histogram] = {}

    def observe(self, model: str, route: str, status: int, source: str, seconds: float) -> None:
        key = (model, route, str(status))
        self.requests[key] = self.requests.get(key, 0) + 1
        if status >= 400 or source == "stream_error":
            ekey = (model, source)
            self.errors[ekey] = self.errors.get(ekey, 0) + 1
        _histogram(self.latency, model, LATENCY_BUCKETS).observe(seconds)

    def observe_ttfb(self, model: str, seconds: float) -> None:
        _histogram(self.ttfb, model, TTFB_BUCKETS).observe(seconds)

    def render(
        self, upstreams: Sequence[Upstream], children: Sequence[tuple[Upstream, str]] = (),
        evictions: Mapping[str, int] | None = None, waiting: int = 0,
        gpu_memory: Sequence[tuple[float, float]] | None = None,
    ) -> str:
        """The whole exposition; `evictions` and `waiting` are the traffic's (gateway.traffic);
        `gpu_memory` is (used, total) MiB per GPU as nvidia-smi last said, when it is known."""
        out: list[str] = []
        out += _family("llama_orch_gateway_requests_total", "counter", "Requests answered, by model, route, status.")
        for (model, route, status), n in sorted(self.requests.items()):
            labels = _labels([("model", model), ("route", route), ("status", status)])
            out.append(f"llama_orch_gateway_requests_total{labels} {n}")
        out += _family(
            "llama_orch_gateway_errors_total", "counter",
            "Failed requests by who produced the error: gateway, upstream or stream_error (cut mid-stream).",
        )
        for (model, source), n in sorted(self.errors.items()):
            out.append(f"llama_orch_gateway_errors_total{_labels([('model', model), ('source', source)])} {n}")
        out += _family(
            "llama_orch_gateway_request_duration_seconds", "histogram", "Whole request, seen by the gateway."
        )
        for model, hist in sorted(self.latency.items()):
            out += hist.lines("llama_orch_gateway_request_duration_seconds", [("model", model)])
        out += _family(
            "llama_orch_gateway_time_to_first_byte_seconds", "histogram",
            "Request arrival to the first upstream body byte (time to first token when streaming).",
        )
        for model, hist in sorted(self.ttfb.items()):
            out += hist.lines("llama_orch_gateway_time_to_first_byte_seconds", [("model", model)])
        out += _family("llama_orch_gateway_waiting_requests", "gauge",
                       "Requests waiting for a slot, for their model to load, or for room to load it (max_loaded).")
        out.append(f"llama_orch_gateway_waiting_requests {waiting}")
        out += _family("llama_orch_gateway_evictions_total", "counter",
                       "Times an instance was stopped to make room for another (max_loaded, group_limits, "
                       "memory budgets): swap churn.")
        for instance, n in sorted((evictions or {}).items()):
            out.append(f"llama_orch_gateway_evictions_total{_labels([('instance', instance)])} {n}")
        out += _instance_lines(upstreams)
        if gpu_memory:
            for name, index, what in (("used", 0, "in use"), ("total", 1, "in all")):
                out += _family(f"llama_orch_gpu_memory_{name}_bytes", "gauge",
                               f"GPU memory {what}, per GPU as nvidia-smi numbers them (NVIDIA only).")
                out += [f"llama_orch_gpu_memory_{name}_bytes{_labels([('gpu', str(gpu))])} {mib[index] * 2**20:.0f}"
                        for gpu, mib in enumerate(gpu_memory)]
        out += relabel_children(children)
        return "\n".join(out) + "\n"


def _family(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def _instance_lines(upstreams: Sequence[Upstream]) -> list[str]:
    ordered = sorted(upstreams, key=lambda u: u.name)
    out = _family("llama_orch_instance_state", "gauge", "1 for the state each instance is in, 0 for the others.")
    for u in ordered:
        for state in InstanceState:
            value = 1 if u.state is state else 0
            out.append(f"llama_orch_instance_state{_labels([('instance', u.name), ('state', state.value)])} {value}")
    out += _family("llama_orch_instance_routable", "gauge", "1 when the gateway sends traffic to the instance.")
    out += [f"llama_orch_instance_routable{_labels([('instance', u.name)])} {int(u.routable)}" for u in ordered]
    out += _family("llama_orch_instance_in_flight", "gauge", "Requests the gateway has in flight to the instance.")
    out += [f"llama_orch_instance_in_flight{_labels([('instance', u.name)])} {u.in_flight}" for u in ordered]
    # a gauge, though named _total: a user's start after a stop sets it back to 0, as `docker start` does
    out += _family("llama_orch_instance_restarts_total", "gauge",
                   "Restarts after crashes or failed health checks in the instance's current run, since it was "
                   "last started by a user or a request.")
    out += [f"llama_orch_instance_restarts_total{_labels([('instance', u.name)])} {u.restarts}" for u in ordered]
    if any(u.memory_bytes for u in ordered):  # a memory budget is set (gateway.ram_budget_gib, vram_budget_gib)
        out += _family("llama_orch_instance_budget_memory_bytes", "gauge",
                       "What the gateway's memory budget counts for the instance, by pool (ram, vram).")
        out += [f"llama_orch_instance_budget_memory_bytes{_labels([('instance', u.name), ('pool', u.memory_pool)])}"
                f" {u.memory_bytes}" for u in ordered]
    return out


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(.*)$")


def relabel_children(children: Sequence[tuple[Upstream, str]]) -> list[str]:
    """Merge each child's Prometheus text, adding `instance` and `model` labels to every sample."""
    headers: dict[str, list[str]] = {}
    samples: dict[str, list[str]] = {}
    for upstream, text in children:
        extra = _labels([("instance", upstream.name), ("model", upstream.alias or upstream.name)])[1:-1]
        for line in text.splitlines():
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    family = headers.setdefault(parts[2], [])
                    if not any(h.split(None, 2)[1] == parts[1] for h in family):
                        family.append(line)
                continue
            match = _SAMPLE.match(line)
            if match is None:
                continue
            name, _, labels, value = match.groups()
            merged = extra + ("," + labels if labels else "")
            family_name = _family_of(name, headers)
            samples.setdefault(family_name, []).append(f"{name}{{{merged}}} {value}")
    out: list[str] = []
    for family_name in list(headers) + [n for n in samples if n not in headers]:
        out += headers.get(family_name, [])
        out += samples.get(family_name, [])
    return out


def _family_of(sample_name: str, headers: dict[str, list[str]]) -> str:
    if sample_name in headers:
        return sample_name
    for suffix in ("_bucket", "_sum", "_count", "_total"):
        base = sample_name.removesuffix(suffix)
        if base != sample_name and base in headers:
            return base
    return sample_name
