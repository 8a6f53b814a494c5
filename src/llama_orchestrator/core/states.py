"""The states an instance can be in, and the groups the rest of the code asks about.

stopped → starting → ready ⇄ unhealthy → stopping → stopped
crash after ready:   → backoff → starting
start cannot succeed: → failed   (only a user command or a config change leaves it)
daemon start:        every instance passes reconciling
"""

from __future__ import annotations

from enum import StrEnum


class InstanceState(StrEnum):
    STOPPED = "stopped"
    RECONCILING = "reconciling"
    STARTING = "starting"
    READY = "ready"
    UNHEALTHY = "unhealthy"
    BACKOFF = "backoff"
    STOPPING = "stopping"
    FAILED = "failed"


#: A child process exists (or may exist) in these states.
PROCESS_STATES = frozenset(
    {InstanceState.STARTING, InstanceState.READY, InstanceState.UNHEALTHY, InstanceState.STOPPING}
)
#: States in which the instance is meant to be up (the supervisor keeps it so).
WANTED_UP_STATES = frozenset(
    {InstanceState.STARTING, InstanceState.READY, InstanceState.UNHEALTHY, InstanceState.BACKOFF}
)
#: States a waiter for "up" stops waiting at.
SETTLED_STATES = frozenset({InstanceState.READY, InstanceState.FAILED, InstanceState.STOPPED})

#: How each state is coloured in the CLI and the dashboard (Rich style names). The state is always
#: also spelled out as a word, so nothing depends on colour (NO_COLOR, screen readers).
STATE_STYLE: dict[str, str] = {
    "ready": "green",
    "starting": "cyan",
    "reconciling": "cyan",
    "unhealthy": "yellow",
    "backoff": "yellow",
    "stopping": "magenta",
    "failed": "bold red",
    "stopped": "dim",
}
