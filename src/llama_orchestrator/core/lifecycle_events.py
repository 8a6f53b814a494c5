"""What the supervisor feeds the instance state machine (events) and what it is told to do
(actions): the vocabulary of `core.lifecycle.decide`, which re-exports every name here."""

from __future__ import annotations

from dataclasses import dataclass

from llama_orchestrator.core.classify import Failure


# ---- events ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Start:
    reason: str = "start requested"


@dataclass(frozen=True, slots=True)
class Stop:
    reason: str = "stop requested"
    #: The daemon is shutting down: stop without draining (its gateway has stopped), and leave a
    #: failed instance failed. Nothing is resumed from a clean shutdown (`resumes_at_start`).
    shutdown: bool = False


@dataclass(frozen=True, slots=True)
class Restart:
    reason: str = "restart requested"


@dataclass(frozen=True, slots=True)
class Spawned:
    pid: int


@dataclass(frozen=True, slots=True)
class SpawnFailed:
    reason: str
    permanent: bool = True


@dataclass(frozen=True, slots=True)
class Probe:
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Canary:
    """The one-token request run after gateway requests kept failing (core.traffic_health)."""

    ok: bool
    detail: str  # the failures and the canary's result, in words


@dataclass(frozen=True, slots=True)
class Progress:
    pass


@dataclass(frozen=True, slots=True)
class Exited:
    description: str
    code: int | None
    failure: Failure


@dataclass(frozen=True, slots=True)
class Stopped:
    description: str


@dataclass(frozen=True, slots=True)
class Impostor:
    detail: str


@dataclass(frozen=True, slots=True)
class Tick:
    pass


@dataclass(frozen=True, slots=True)
class Adopted:
    pid: int


@dataclass(frozen=True, slots=True)
class NotAdopted:
    reason: str
    should_run: bool


Event = (
    Start
    | Stop
    | Restart
    | Spawned
    | SpawnFailed
    | Probe
    | Canary
    | Progress
    | Exited
    | Stopped
    | Impostor
    | Tick
    | Adopted
    | NotAdopted
)


# ---- actions --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Spawn:
    pass


@dataclass(frozen=True, slots=True)
class StopProcess:
    kill: bool
    # let the gateway's requests in flight finish first (bounded by the stop grace): a user's stop
    # or restart of a ready instance, whose answers would otherwise be cut (llama-server does not
    # even exit on SIGTERM while a stream is open: it waits for the kill)
    drain: bool = False


@dataclass(frozen=True, slots=True)
class RecordLoadTime:
    seconds: float


Action = Spawn | StopProcess | RecordLoadTime
