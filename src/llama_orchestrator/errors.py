"""Every error the orchestrator raises on purpose, and the exit code each maps to (L0: stdlib only).

    OrchestratorError                 exit 1
    ├── ConfigError                   exit 2  one or more ConfigProblem (file, field path, rule)
    ├── HomeError                     exit 7  home directory missing, not writable, unsafe
    ├── InstanceNotFoundError         exit 4  .instance
    ├── InstanceExistsError           exit 5  .instance
    ├── InvalidTransitionError        exit 5  .instance, .state, .requested
    ├── InstanceFailedError           exit 6  .instance, .reason (up/start ended in `failed`)
    ├── SpawnError                    exit 6  binary missing, port taken, OSError on spawn
    ├── WaitTimeoutError              exit 9  .instances still on their way when --timeout ran out
    ├── StoreError                    exit 1  wraps sqlite3.Error
    ├── DaemonError                   exit 3
    │   ├── DaemonNotRunningError     exit 3
    │   └── DaemonAlreadyRunningError exit 3  .pid, .address
    ├── UpstreamError                 exit 1  gateway → llama-server failures
    ├── HubError                      exit 1  fetching from Hugging Face failed (network, access)
    │   ├── HubNotFoundError          exit 4  no such repo, revision or model file
    │   └── ModelInUseError           exit 5  `models rm` of a file an instance config uses
    └── AutostartError                exit 8
        └── UnsupportedPlatformError  exit 8

The CLI's `main()` is the one place these become exit codes and one-line messages; the
gateway's error middleware is the one place they become HTTP responses.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_DAEMON = 3
EXIT_NOT_FOUND = 4
EXIT_CONFLICT = 5
EXIT_INSTANCE_FAILED = 6
EXIT_HOME = 7
EXIT_AUTOSTART = 8
EXIT_TIMEOUT = 9
EXIT_INTERRUPTED = 130


class OrchestratorError(Exception):
    """Base of every error raised on purpose; `exit_code` is what the CLI exits with."""

    exit_code: int = EXIT_ERROR
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong in one config file: where, which field, and which rule it breaks."""

    file: str
    field: str
    message: str
    line: int | None = None
    column: int | None = None
    severity: str = "error"  # "error" or "warning"

    def render(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}" + (f":{self.column}" if self.column is not None else "")
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class ConfigError(OrchestratorError):
    """One or more configs are invalid; `problems` lists every one of them."""

    exit_code = EXIT_CONFIG

    def __init__(self, problems: list[ConfigProblem], *, hint: str | None = None) -> None:
        self.problems = [p for p in problems if p.severity == "error"] or problems
        count = len(self.problems)
        first = self.problems[0].render() if self.problems else "invalid configuration"
        message = first if count == 1 else f"{count} problems in configuration; first: {first}"
        super().__init__(message, hint=hint)


class HomeError(OrchestratorError):
    """The home directory cannot be used (not writable, not a directory)."""

    exit_code = EXIT_HOME


class InstanceError(OrchestratorError):
    """An error about one named instance."""

    def __init__(self, instance: str, message: str, *, hint: str | None = None) -> None:
        self.instance = instance
        super().__init__(message, hint=hint)


class InstanceNotFoundError(InstanceError):
    exit_code = EXIT_NOT_FOUND

    def __init__(self, instance: str, *, known: list[str] | None = None, also: list[str] | None = None) -> None:
        hint = f"known instances: {', '.join(known)}" if known else "create one with `llama-orch create`"
        names = [instance, *(also or [])]  # `also`: more unknown names the same command gave
        what = f"instance named {instance!r}" if len(names) == 1 else f"instances named {', '.join(map(repr, names))}"
        super().__init__(instance, f"no {what}", hint=hint)


class InstanceExistsError(InstanceError):
    exit_code = EXIT_CONFLICT


class InvalidTransitionError(InstanceError):
    exit_code = EXIT_CONFLICT

    def __init__(self, instance: str, state: str, requested: str) -> None:
        self.state = state
        self.requested = requested
        super().__init__(instance, f"cannot {requested} {instance!r} while it is {state}")


class InstanceFailedError(InstanceError):
    exit_code = EXIT_INSTANCE_FAILED

    def __init__(self, instance: str, reason: str, *, hint: str | None = None) -> None:
        self.reason = reason
        super().__init__(instance, f"{instance}: failed: {reason}", hint=hint)


class SpawnError(InstanceError):
    exit_code = EXIT_INSTANCE_FAILED


class WaitTimeoutError(OrchestratorError):
    """A command gave up waiting (`--timeout`) while `instances` were still starting or stopping;
    the daemon carries on with them, so this is not a failure of theirs."""

    exit_code = EXIT_TIMEOUT

    def __init__(self, instances: list[str], message: str, *, hint: str | None = None) -> None:
        self.instances = instances
        super().__init__(message, hint=hint)


class StoreError(OrchestratorError):
    """The state database could not be read or written."""


class DaemonError(OrchestratorError):
    exit_code = EXIT_DAEMON


class DaemonNotRunningError(DaemonError):
    pass


class DaemonAlreadyRunningError(DaemonError):
    def __init__(self, pid: int | None, address: str | None) -> None:
        self.pid = pid
        self.address = address
        where = f" (pid {pid}" + (f", control API {address}" if address else "") + ")" if pid else ""
        super().__init__(f"a daemon is already running for this home{where}")


class UpstreamError(OrchestratorError):
    """A llama-server behind the gateway failed or could not be reached."""


class HubError(OrchestratorError):
    """A model could not be fetched from Hugging Face (network, access, or no such file)."""


class HubNotFoundError(HubError):
    exit_code = EXIT_NOT_FOUND


class ModelInUseError(HubError):
    exit_code = EXIT_CONFLICT


class AutostartError(OrchestratorError):
    exit_code = EXIT_AUTOSTART


class UnsupportedPlatformError(AutostartError):
    pass
