"""How long to wait before the next start after a crash or a failed start (pure).

The curve follows Kubernetes and DESIGN section 4: the first restart happens at once, then the
delays double from `initial` (2 s, 4 s, 8 s, …) up to `cap` (300 s), each scaled by a jitter
factor in [0.9, 1.1] so several models that crashed together do not restart in lockstep. The
random draw is passed in, so tests are exact.
"""

from __future__ import annotations


def restart_delay(attempt: int, initial_s: float, cap_s: float, jitter_draw: float) -> float:
    """Delay before restart number `attempt` (1-based); `jitter_draw` is uniform in [0, 1)."""
    if attempt <= 1:
        return 0.0
    base: float = min(cap_s, initial_s * 2.0 ** (attempt - 2))
    return base * (0.9 + 0.2 * jitter_draw)
