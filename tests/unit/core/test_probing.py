"""The probe schedule: a hang is confirmed within 3 intervals, a blip shorter than one is not."""

from __future__ import annotations

from hypothesis import given, strategies as st

from llama_orchestrator.config.models import HealthPolicy
from llama_orchestrator.core.probing import probe_period, probe_timeout


def test_starting_ready_and_suspect_periods() -> None:
    health = HealthPolicy(interval_s=10, start_poll_s=0.1)
    assert probe_period(health, starting=True, last_failed=True) == 0.1
    # a young start is polled in proportion to its age, from 10 ms up to start_poll_s
    assert [probe_period(health, starting=True, last_failed=False, age_s=a) for a in (0, 0.05, 0.5, 5)] == [
        0.01, 0.01, 0.05, 0.1]
    assert probe_period(health, starting=False, last_failed=False) == 10
    assert probe_period(health, starting=False, last_failed=True) == 5


def worst_detection(health: HealthPolicy) -> float:
    """Latest time, after a hang begins, at which the threshold-th probe has failed: the hang
    starts just after a good probe, so the first failing probe starts a whole interval later;
    every probe then waits out its timeout before the next one starts, as the supervisor does."""
    at = health.interval_s  # the first probe after the hang starts
    timeout = probe_timeout(health, starting=False, last_failed=False)
    for _ in range(health.failure_threshold - 1):
        at += max(probe_period(health, starting=False, last_failed=True), timeout)
        timeout = probe_timeout(health, starting=False, last_failed=True)
    return at + timeout


@given(interval=st.floats(0.2, 60), timeout_ratio=st.floats(0.01, 2))
def test_a_hang_is_confirmed_within_three_intervals_at_the_default_threshold(
    interval: float, timeout_ratio: float
) -> None:
    health = HealthPolicy(interval_s=interval, timeout_s=interval * timeout_ratio)
    assert worst_detection(health) <= 3 * interval + 1e-9


@given(interval=st.floats(0.2, 60), threshold=st.integers(3, 10))
def test_failures_must_span_at_least_one_interval_to_count(interval: float, threshold: int) -> None:
    # from the default threshold of 3 up, the first and last of the failing probes that make
    # an instance unhealthy start at least an interval apart: a shorter blip is tolerated
    health = HealthPolicy(interval_s=interval, failure_threshold=threshold)
    span = (threshold - 1) * probe_period(health, starting=False, last_failed=True)
    assert span >= interval - 1e-9


def test_timeouts_never_run_past_the_next_probe_once_ready() -> None:
    health = HealthPolicy(interval_s=1.0, timeout_s=3.0)
    assert probe_timeout(health, starting=False, last_failed=False) == 1.0
    assert probe_timeout(health, starting=False, last_failed=True) == 0.5
    assert probe_timeout(health, starting=True, last_failed=True) == 1.0
    assert probe_timeout(HealthPolicy(), starting=False, last_failed=True) == 3.0  # 10 s / 3 s defaults


def test_a_young_start_is_seen_ready_within_a_tenth_of_its_age_with_few_probes() -> None:
    health = HealthPolicy()
    at, probes = 0.0, []
    while at < 2.0:
        probes.append(at)
        at += probe_period(health, starting=True, last_failed=False, age_s=at)
    for ready in (0.15, 0.3, 0.8):  # the first probe after `ready` comes within 10 % (+ 10 ms)
        seen = next(p for p in probes if p >= ready)
        assert seen - ready <= 0.1 * ready + 0.01
    assert len(probes) <= 45  # vs 20 at a flat 100 ms over the first 2 s
