"""Passive health as pure decisions: which requests count, when a canary runs, when a deep probe is due."""

from __future__ import annotations

import json

import pytest

from llama_orchestrator.core import traffic_health as th
from llama_orchestrator.core.traffic_health import ANSWERED, TrafficHealth, canary_request, status_evidence


@pytest.mark.parametrize(("status", "evidence"), [
    (200, ANSWERED), (400, ANSWERED), (404, ANSWERED), (501, ANSWERED),  # answered: the server works
    (503, None),  # "Loading model": the probes see that, it says nothing here
    (500, "it answered HTTP 500"), (502, "it answered HTTP 502"), (504, "it answered HTTP 504"),
])
def test_what_a_status_from_llama_server_says(status: int, evidence: str | None) -> None:
    assert status_evidence(status) == evidence


def test_a_failure_names_llama_servers_own_message_when_it_gave_one() -> None:
    body = b'{"error":{"code":500,"message":"CUDA error: out of memory","type":"server_error"}}'
    assert status_evidence(500, body) == "it answered HTTP 500: CUDA error: out of memory"
    assert status_evidence(500, b'{"error":{"message":"' + b"x" * 500 + b'"}}') == "it answered HTTP 500: " + "x" * 200
    for odd in (b"<html>bad gateway</html>", b"[1]", b'{"error":"text"}', b""):
        assert status_evidence(502, odd) == "it answered HTTP 502"
    assert status_evidence(200, body) == ""  # an answer is an answer, whatever it says


def test_a_run_of_failures_asks_for_one_canary_and_an_answer_in_between_resets_it() -> None:
    th = TrafficHealth(threshold=3)
    assert not th.note("cut", 0.0, 10.0)
    assert not th.note("cut", 0.1, 10.0)
    assert not th.note(ANSWERED, 0.2, 10.0)  # the server answered: the run starts again
    assert not th.note(None, 0.3, 10.0)  # the client left: says nothing, resets nothing
    assert not th.note("it answered HTTP 500", 0.4, 10.0)
    assert not th.note("it answered HTTP 500", 0.5, 10.0)
    assert th.failures == 2
    assert th.note("it answered HTTP 500", 0.6, 10.0)  # the third in a row
    assert th.describe() == "3 gateway requests in a row failed (the last: it answered HTTP 500)"
    assert not th.note("it answered HTTP 500", 0.7, 10.0)  # one canary at a time
    th.canary_done()
    assert th.failures == 0 and not th.canary_running


def test_canaries_come_at_most_once_per_period_and_only_while_ready() -> None:
    th = TrafficHealth(threshold=1)
    assert not th.note("cut", 0.0, 10.0, ready=False)  # starting or unhealthy: the probes decide
    assert th.note("cut", 1.0, 10.0)
    th.canary_done()
    assert not th.note("cut", 5.0, 10.0)  # a client sending prompts the server chokes on
    assert th.note("cut", 11.0, 10.0)


def test_threshold_zero_turns_it_off() -> None:
    th = TrafficHealth(threshold=0)
    assert not any(th.note("cut", float(t), 0.0) for t in range(100))


def test_an_answered_request_counts_as_a_deep_probe() -> None:
    th = TrafficHealth(threshold=3)
    assert th.deep_probe_due(last_deep=0.0, now=60.0, interval_s=60.0)
    th.note(ANSWERED, 30.0, 10.0)
    assert not th.deep_probe_due(last_deep=0.0, now=60.0, interval_s=60.0)
    assert th.deep_probe_due(last_deep=0.0, now=90.0, interval_s=60.0)
    th.note("cut", 100.0, 10.0)  # a failure is no probe
    assert th.deep_probe_due(last_deep=0.0, now=150.0, interval_s=60.0)


def test_the_canary_is_the_smallest_request_of_the_servers_kind() -> None:
    assert canary_request(False, ["--no-warmup"])[0] == "/completion"
    assert canary_request(True, []) == ("/embedding", {"content": "a"})
    assert canary_request(False, ["--embedding"])[0] == "/embedding"
    assert canary_request(True, ["--reranking"])[0] == "/rerank"


def test_busy_slots_counts_llama_servers_processing_slots_and_nothing_else() -> None:
    answer = [{"id": 0, "is_processing": True}, {"id": 1, "is_processing": False}, {"id": 2, "is_processing": True}]
    assert th.busy_slots(json.dumps(answer).encode()) == 2
    assert th.busy_slots(b"[]") == 0
    assert th.busy_slots(b'[{"id": 0, "is_processing": "yes"}]') == 0  # only a true boolean counts
    for odd in (b'{"error": {"code": 501}}', b"[1, 2]", b"not json", b""):
        assert th.busy_slots(odd) is None
