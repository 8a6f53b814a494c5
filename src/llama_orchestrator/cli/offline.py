"""What `ps`, `inspect`, `logs` and `events` show while no daemon runs: the configs, the state the
last daemon recorded in state.db, and the log files.

These commands never start a daemon, as `docker ps` never starts dockerd: one started to answer a
listing would bring back what `daemon stop` has just stopped, and take the gateway's port. A
process the last daemon left running (it was killed, or `daemon stop --keep-instances`) shows with
its recorded state when it is proven to be the same process (`engine.check_ours`), unsupervised;
every other instance is stopped, or failed as recorded.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from llama_orchestrator.cli import _console
from llama_orchestrator.config.names import check_instance_name
from llama_orchestrator.config.paths import HomePaths
from llama_orchestrator.core.states import InstanceState
from llama_orchestrator.daemon.client import DaemonClient
from llama_orchestrator.daemon.protocol import EventOut, InstanceDetail, InstanceStatus
from llama_orchestrator.errors import DaemonNotRunningError, InstanceNotFoundError

if TYPE_CHECKING:
    from llama_orchestrator.config.loader import Fleet
    from llama_orchestrator.config.models import InstanceConfig
    from llama_orchestrator.store import InstanceRecord, Store

S = InstanceState
START_HINT = "`llama-orch up` or `llama-orch daemon start` starts it, with the autostart instances"
UNSUPERVISED = "left running by the last daemon, unsupervised: `llama-orch daemon start` adopts it"


def connect(paths: HomePaths, name: str | None = None) -> DaemonClient | None:
    """The running daemon's client, or None when none runs; never starts one. That none runs is
    said on stderr when there is something to show (not on a new empty home, nor before `inspect
    nope`'s own error)."""
    try:
        return DaemonClient.connect(paths)
    except DaemonNotRunningError:
        if has_config(paths, name) if name is not None else _holds_anything(paths):
            _console.warn(f"no daemon is running for {paths.home}: shown as the last one left it; {START_HINT}")
        return None


def _holds_anything(paths: HomePaths) -> bool:
    return paths.state_db.exists() or (paths.instances_dir.is_dir() and
                                       any(paths.instances_dir.glob("*/config.json")))


def not_running(paths: HomePaths, what: str) -> DaemonNotRunningError:
    """The error of a command that follows what only a running daemon produces."""
    return DaemonNotRunningError(f"no daemon is running for {paths.home}: {what}", hint=START_HINT)


def statuses(paths: HomePaths, *, skip: frozenset[str] = frozenset(), only_invalid: bool = False
             ) -> list[InstanceStatus]:
    """One row per instance config on disk but those in `skip`, from its recorded state; an invalid
    config's row says so. `only_invalid`: with a daemon, which lists the valid ones itself."""
    from llama_orchestrator.config.drift import invalid_config

    fleet = _fleet(paths)
    unknown = {"host": "-", "port": 0, "alias": "-", "backend": "-", "model": "-"}
    with _store(paths) as store:
        now = time.time()
        return [_status(fleet.instances[name], store, now) if name in fleet.instances else
                _row(name, unknown, store, now).model_copy(update={"changed": invalid_config(fleet.errors_in(name))})
                for name in sorted(fleet.config_files)
                if name not in skip and not (only_invalid and name in fleet.instances)]


def detail(paths: HomePaths, name: str) -> InstanceDetail:
    """`inspect` without a daemon: the config, its command line as this shell renders it, the recorded state."""
    from llama_orchestrator.config.argv import build_command
    from llama_orchestrator.config.loader import resolve_binary
    from llama_orchestrator.engine import tail_lines

    fleet = _fleet(paths)
    config = _valid(fleet, name)
    with _store(paths) as store:
        status = _status(config, store, time.time())
    command = build_command(config, resolve_binary(config, fleet.orchestrator) or "llama-server", os.environ)
    log_path = paths.instance_log(name)
    return InstanceDetail(
        status=status,
        config=config.model_dump(mode="json", by_alias=True, exclude={"schema_"}),
        argv=command.argv,
        env=command.redacted_env(),
        log_path=str(log_path),
        log_tail=tail_lines(log_path, 20),
    )


def events(paths: HomePaths, name: str | None, limit: int) -> list[EventOut]:
    """The newest `limit` transitions recorded (of `name`), oldest first."""
    with _store(paths) as store:
        found = store.recent_events(name, limit) if store is not None and limit else []
    return [EventOut(id=e.id, instance=e.instance, from_state=e.from_state, to_state=e.to_state, reason=e.reason,
                     at=e.at) for e in found]


def left_running(paths: HomePaths, names: list[str]) -> list[str]:
    """Those of `names` whose process the last daemon left running (`still_running`)."""
    with _store(paths) as store:
        if store is None:
            return []
        records = [store.get_instance(name) for name in names]
    return [r.name for r in records if r is not None and still_running(r)]


def daemon_to_stop(paths: HomePaths, names: list[str]) -> DaemonClient | None:
    """The daemon that stops `names` (`down`, `stop`, `rm`): the running one; None when none runs
    and none of them runs either; else one started (without autostart) to adopt and stop what the
    last daemon left running, which only a daemon can (deleting its config would leave it untracked)."""
    try:
        return DaemonClient.connect(paths)
    except DaemonNotRunningError:
        return started_to_stop(paths, names)


def started_to_stop(paths: HomePaths, names: list[str]) -> DaemonClient | None:
    """No daemon runs: one started (without autostart) to stop those of `names` the last daemon
    left running, else None."""
    from llama_orchestrator.daemon.launcher import ensure_daemon

    left = left_running(paths, names)
    if not left:
        return None
    what = f"{left[0]} is" if len(left) == 1 else f"{', '.join(left)} are"
    it = "it" if len(left) == 1 else "them"
    _console.info(f"{what} left running by the last daemon: starting a daemon to stop {it} first")
    return ensure_daemon(paths)


def has_config(paths: HomePaths, name: str) -> bool:
    return check_instance_name(name) is None and paths.instance_config(name).exists()


def not_found(paths: HomePaths, name: str) -> InstanceNotFoundError:
    """The error of a command given a name with no config (nor, for `events`, any history)."""
    from llama_orchestrator.config.loader import instance_names

    return InstanceNotFoundError(name, known=instance_names(paths))


def log_lines(paths: HomePaths, name: str, lines: int, *, follow: bool) -> Iterator[str]:
    """The last `lines` of an instance's log file; with `follow`, then each new line (until Ctrl+C):
    a process left running writes on with no daemon."""
    from llama_orchestrator.engine import follow as follow_file, tail_lines

    if not has_config(paths, name):
        raise not_found(paths, name)
    path = paths.instance_log(name)
    if not follow:
        yield from tail_lines(path, lines)
        return
    stream = follow_file(path, from_end_lines=lines)

    async def next_line() -> str:
        return await anext(stream)

    with asyncio.Runner() as runner:
        while True:
            yield runner.run(next_line())


# ---- reading the home ----------------------------------------------------------------------------
def _fleet(paths: HomePaths) -> Fleet:
    from llama_orchestrator.config.loader import load_fleet

    return load_fleet(paths, offline=True)


def _valid(fleet: Fleet, name: str) -> InstanceConfig:
    from llama_orchestrator.errors import ConfigError

    config = fleet.instances.get(name)
    if config is not None:
        return config
    if name in fleet.config_files:
        raise ConfigError(fleet.errors_in(name), hint="llama-orch config validate")
    raise InstanceNotFoundError(name, known=sorted(fleet.config_files))


@contextmanager
def _store(paths: HomePaths) -> Iterator[Store | None]:
    """state.db, if a daemon ever made it (None otherwise: nothing was ever recorded)."""
    if not paths.state_db.exists():
        yield None
        return
    from llama_orchestrator.store import Store

    store = Store.open(paths.state_db)
    try:
        yield store
    finally:
        store.close()


def _status(config: InstanceConfig, store: Store | None, now: float) -> InstanceStatus:
    from llama_orchestrator.daemon.snapshots import config_columns

    return _row(config.name, config_columns(config), store, now)


def _row(name: str, columns: dict[str, Any], store: Store | None, now: float) -> InstanceStatus:
    from llama_orchestrator.daemon.resources import resident_bytes

    record = store.get_instance(name) if store is not None else None
    alive = record is not None and still_running(record)
    state, reason = S.STOPPED, "no process recorded"
    if store is not None and record is not None:
        state, reason = _shown(record, alive, store)
    pid = record.pid if alive and record is not None else None
    ready_at = record.ready_at if record is not None and alive and state in (S.READY, S.UNHEALTHY) else None
    return InstanceStatus(
        name=name,
        state=state.value,
        desired=record.desired if record is not None else "down",
        reason=reason,
        pid=pid,
        **columns,
        started_at=record.started_at if record is not None and alive else None,
        ready_at=ready_at,
        uptime_s=now - ready_at if ready_at else None,
        restarts=record.restarts if record is not None else 0,
        last_error=record.last_error if record is not None else None,
        last_exit=_last_exit(record),
        rss_bytes=resident_bytes(pid) if pid is not None else None,
    )


def _shown(record: InstanceRecord, alive: bool, store: Store) -> tuple[InstanceState, str]:
    """The state and reason shown for a recorded instance, with no daemon to ask."""
    if alive:
        return record.state, UNSUPERVISED
    if record.state is S.FAILED:
        return S.FAILED, record.last_error or ""
    if record.state is not S.STOPPED:
        return S.STOPPED, f"was {record.state.value} when the last daemon ended; its process is gone"
    last = store.recent_events(record.name, 1)  # how it stopped, as the daemon said it
    return S.STOPPED, last[0].reason if last and last[0].to_state == S.STOPPED.value else ""


def still_running(record: InstanceRecord) -> bool:
    """Whether the process recorded for the instance is still the one the last daemon ran."""
    from llama_orchestrator.engine import ProcessIdentity, check_ours

    if record.pid is None or record.pid_create_time is None:
        return False
    identity = ProcessIdentity(record.pid, record.pid_create_time, record.boot_id or "", record.token or "")
    return check_ours(identity).adoptable


def _last_exit(record: InstanceRecord | None) -> str | None:
    from llama_orchestrator.engine import ExitStatus

    if record is None or (record.last_exit_code is None and record.last_exit_signal is None):
        return None
    return ExitStatus(record.last_exit_code, record.last_exit_signal).describe()
