"""Start a child process the way every llama-server must be started (the only Popen call).

- argv is a list, never a shell string; stdin is /dev/null (NUL).
- stdout and stderr go straight to the instance log, opened O_APPEND, never to a pipe: a pipe
  to the daemon would kill the child by SIGPIPE when the daemon crashes, or block it when the
  daemon stops draining (reliability.md 0.8, scenario 22).
- The child gets its own process group/session (POSIX) or group + Job Object (Windows), and
  two environment markers: the instance name and a random per-child token, which is how a
  restarted daemon proves a pid is still its child and finds escaped grandchildren.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from llama_orchestrator import scheduling
from llama_orchestrator._platform import IS_WINDOWS
from llama_orchestrator.engine import platform_ops
from llama_orchestrator.engine.child import ENV_CHILD_TOKEN, ENV_INSTANCE, ChildProcess
from llama_orchestrator.engine.identity import boot_id
from llama_orchestrator.engine.logfile import LOG_FILE_MODE  # logs can contain prompts
from llama_orchestrator.errors import SpawnError

logger = logging.getLogger(__name__)


__all__ = ["SpawnSpec", "resolve_binary", "spawn"]


@dataclass(frozen=True)
class SpawnSpec:
    """Everything needed to start one child: argv[0] is the binary (a path or a name on PATH)."""

    instance: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    cwd: Path | None = None


def resolve_binary(instance: str, program: str, path_env: str | None) -> str:
    """Return the executable `program` resolves to, or raise SpawnError saying what to do.

    Raises:
        SpawnError: the binary does not exist, or is not executable.
    """
    has_dir = os.sep in program or (os.altsep is not None and os.altsep in program)
    if not has_dir:
        found = shutil.which(program, path=path_env)
        if found is None:
            raise SpawnError(
                instance,
                f"{instance}: executable {program!r} not found on PATH (set `binary` in the instance config, "
                "`builds.<backend>` in orchestrator.json, or LLAMA_ORCH_LLAMA_SERVER where the daemon runs)",
                hint="set the full path to llama-server in the instance config "
                "(or build it with ./scripts/build-llama-server)",
            )
        return found
    path = Path(program)
    if not path.is_file():
        raise SpawnError(
            instance,
            f"{instance}: executable {program} does not exist",
            hint="check the llama-server path in the instance config "
            "(or build it with ./scripts/build-llama-server)",
        )
    if not IS_WINDOWS and not os.access(path, os.X_OK):
        raise SpawnError(
            instance,
            f"{instance}: {program} is not executable",
            hint=f"make it executable: chmod +x {program}",
        )
    return program


def spawn(spec: SpawnSpec) -> ChildProcess:
    """Start the child described by `spec` and return its identity (blocks only for fork/exec).

    Raises:
        SpawnError: missing or non-executable binary, unwritable log file, or any OSError
            from starting the process.
    """
    if not spec.argv:
        raise SpawnError(spec.instance, f"{spec.instance}: empty command line")
    token = secrets.token_hex(16)
    env = {**os.environ, **spec.env, ENV_INSTANCE: spec.instance, ENV_CHILD_TOKEN: token}
    resolve_binary(spec.instance, spec.argv[0], env.get("PATH"))
    log_fd = _open_log(spec)
    try:
        with scheduling.normal_for_children():  # llama-server is not to inherit the daemon's SCHED_BATCH
            popen = subprocess.Popen(
                spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                env=env,
                cwd=spec.cwd,
                close_fds=True,
                **platform_ops.popen_kwargs(),
            )
    except OSError as exc:
        raise SpawnError(
            spec.instance, f"{spec.instance}: cannot start {spec.argv[0]}: {exc}",
            hint="check the binary, its permissions and the working directory",
        ) from exc
    finally:
        os.close(log_fd)
    child = ChildProcess(
        instance=spec.instance,
        pid=popen.pid,
        create_time=_create_time(popen.pid),
        boot_id=boot_id(),
        token=token,
        popen=popen,
    )
    try:
        platform_ops.after_spawn(child)
    except OSError as exc:
        popen.kill()
        popen.wait()
        raise SpawnError(spec.instance, f"{spec.instance}: cannot contain the process tree: {exc}") from exc
    logger.info("%s: started pid %d", spec.instance, child.pid, extra={"instance": spec.instance})
    return child


def _open_log(spec: SpawnSpec) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(spec.log_path, flags, LOG_FILE_MODE)
    except OSError as exc:
        raise SpawnError(
            spec.instance, f"{spec.instance}: cannot open log file {spec.log_path}: {exc}",
            hint="check that the log directory exists, is writable and has free space",
        ) from exc


def _create_time(pid: int) -> float:
    # The child is not reaped yet (we hold the Popen), so even if it already exited its
    # zombie still answers; the fallback only covers platforms where that is not true.
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return time.time()
