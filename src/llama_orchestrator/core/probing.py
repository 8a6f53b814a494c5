"""When the next health probe is due, and how long it may take: the schedule as pure functions.

Ready instances are probed every `interval_s` (start to start). A starting one is probed in
proportion to its age, every tenth of the time it has been starting (at least 10 ms, at most
`start_poll_s`): a server that loads in 0.2 s is seen ready ~10 ms after it is, like a script
polling as fast as it can, while a long load costs no more probes than before. After a failed probe the
next ones come at half the interval and may take at most that long: a hang is confirmed sooner
(with the default threshold of 3, within 2.5 intervals of its start, inside the "3 poll
intervals" target), yet with that threshold a blip must still last a whole interval to count.
"""

from __future__ import annotations

from llama_orchestrator.config.models import HealthPolicy

CONFIRM_FRACTION = 0.5  # of interval_s, between probes after a failure
START_POLL_AGE_FRACTION = 0.1  # of the time spent starting, between probes while starting
START_POLL_MIN_S = 0.01


def probe_period(health: HealthPolicy, *, starting: bool, last_failed: bool, age_s: float = float("inf")) -> float:
    """Seconds from the start of the last probe to the start of the next one; `age_s` is how
    long the instance has been starting."""
    if starting:
        return min(health.start_poll_s, max(START_POLL_MIN_S, age_s * START_POLL_AGE_FRACTION))
    if last_failed:
        return health.interval_s * CONFIRM_FRACTION
    return health.interval_s


def probe_timeout(health: HealthPolicy, *, starting: bool, last_failed: bool) -> float:
    """Seconds the next probe may take: never past the following probe's due time once ready
    (a loading server answers /health at once, so starting probes keep the interval's cap)."""
    cap = health.interval_s if starting else probe_period(health, starting=False, last_failed=last_failed)
    return min(health.timeout_s, cap)


DEEP_TIMEOUT_MIN_S = 5.0  # a deep probe or canary does real work: never less than this


def deep_probe_timeout(health: HealthPolicy) -> float:
    """Seconds a deep probe (/slots, a one-token request) or a canary may take."""
    return max(health.timeout_s, DEEP_TIMEOUT_MIN_S)
