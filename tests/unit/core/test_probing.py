"""The probe schedule: a hang is confirmed within 3 intervals, a blip shorter than one is not."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from llama_orchestrator.config.models import HealthPolicy
from llama_orchestrator.core.probing import probe_period, probe_timeout


def test_starting_ready_and_suspect_periods() -> None:
    health = HealthPolicy(interval_s=10, start_poll_s=0.1)
    assert probe_period(health, starting=True, last_failed=True) == 0.1
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
