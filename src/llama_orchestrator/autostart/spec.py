"""The data every autostart backend renders: files to write, commands to run, notes to show.

Renderers (`systemd`, `launchd`, `windows_task`, `windows_service`) are pure functions from
(`HomePaths`, `HostFacts`, options) to a `ServicePlan`; `executor` is the only module that writes
files or runs commands (honcho's exporters: render as data, write separately). Keeping the plan
as plain data is what lets `--dry-run` print exactly what an install would do and lets the tests
compare it with golden files on any OS. Stdlib only.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Literal

Mode = Literal["logon", "boot"]
Backend = Literal["systemd", "launchd", "windows-task", "windows-service"]

SERVICE_NAME = "llama-orchestrator"
"""The default home's name everywhere: systemd unit stem, scheduled task name, Windows service name.
Any other home's entries carry a hash of the home (`entry_name`)."""

LAUNCHD_LABEL = "io.github.llama-orchestrator"

STOP_TIMEOUT_S = 90
"""The least time a service manager waits for the daemon to stop before killing it.

The daemon's own stop can take up to 2 x `restart.stop_grace_s` per instance (requests in
flight finish first, then the grace between the stop signal and the kill), in parallel, then
it records the final states. `stop_timeout_s()` raises this for configs with a longer grace;
the floor covers the default 15 s grace with room to spare, and instances added after the
install with a somewhat longer one.
"""
STOP_MARGIN_S = 30
"""Added to 2 x the longest grace: the kill, the daemon's own shutdown, a slow disk."""

FORWARDED_ENV = ("LLAMA_ORCH_LLAMA_SERVER", "LLAMA_ORCH_EVENT_LOOP")
"""Variables the unit/plist/task carries over from the installing environment when set there.

Paths and switches, never secrets: a service manager starts the daemon with an almost empty
environment, so without these an instance relying on `LLAMA_ORCH_LLAMA_SERVER` would not find
llama-server after a reboot. API keys and everything else are never copied.
"""


@dataclass(frozen=True, slots=True)
class RenderedFile:
    """One file an install writes: where, what, with which permission bits and encoding.

    `encoding` is part of the data because Task Scheduler reads its XML as UTF-16 (with a BOM);
    every other file is UTF-8.
    """

    path: Path
    content: str
    mode: int = 0o644
    encoding: str = "utf-8"


@dataclass(frozen=True, slots=True)
class Command:
    """One command an install, uninstall or status query runs (argv, never a shell string).

    `check=False` marks commands whose failure is expected and harmless, such as stopping a
    service that is not running, or asking systemd whether a unit is enabled (exit 1 = "no").
    """

    argv: tuple[str, ...]
    check: bool = True

    def display(self) -> str:
        """Render the command for humans, quoting arguments that contain spaces."""
        return " ".join(_display_quote(arg) for arg in self.argv)


def _display_quote(arg: str) -> str:
    if arg and not any(c in arg for c in " \t\"'"):
        return arg
    return '"' + arg.replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class ServicePlan:
    """Everything one backend does to install, remove and inspect the autostart entry.

    Install: write `files`, then run `install_commands`.
    Uninstall: run `uninstall_commands`, delete `files`, then run `post_uninstall_commands`
    (systemd needs a `daemon-reload` after the unit file is gone).
    Status: run `status_commands` (all `check=False`) and interpret them per backend.
    """

    backend: Backend
    name: str
    files: tuple[RenderedFile, ...] = ()
    install_commands: tuple[Command, ...] = ()
    uninstall_commands: tuple[Command, ...] = ()
    post_uninstall_commands: tuple[Command, ...] = ()
    status_commands: tuple[Command, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HostFacts:
    """What the renderers need to know about the machine, gathered once by `plan.current_host()`.

    Passing these in (rather than reading `os`/`sys` inside the renderers) keeps rendering pure:
    the tests render every platform's plan with fake users and paths, spaces included.
    """

    python: PurePath
    """The interpreter of the installed environment (`sys.executable`)."""
    user: str
    """Login name (Linux/macOS) or `DOMAIN\\user` (Windows)."""
    uid: int | None = None
    """Numeric user id on POSIX (launchd's `gui/<uid>` domain); None on Windows."""
    user_config_dir: Path = field(default_factory=lambda: Path("~/.config"))
    """`$XDG_CONFIG_HOME` or `~/.config`: systemd user units live in `<this>/systemd/user`."""
    user_home: Path = field(default_factory=lambda: Path("~"))
    """The user's home directory: LaunchAgents live in `<this>/Library/LaunchAgents`."""
    base_python: PurePath | None = None
    """Windows service only: the real interpreter behind a venv's `python.exe` launcher."""
    site_packages: PurePath | None = None
    """Windows service only: the environment's site-packages, added by the service host."""
    service_host_script: PurePath | None = None
    """Windows service only: the path of `autostart/_service_host.py` in this environment."""
    environment: tuple[tuple[str, str], ...] = ()
    """The `FORWARDED_ENV` variables set in the installing environment (`forwarded_environment`)."""
    default_home: PurePath | None = None
    """The installing user's default home (no `--home`, no `LLAMA_ORCH_HOME`): its entry keeps the
    plain names it always had; None: not known, every home's names carry its hash."""


def daemon_argv(python: PurePath | str, home: PurePath | str) -> tuple[str, ...]:
    """The foreground daemon command every backend runs: `<python> -m llama_orchestrator ... daemon run`.

    `--home` is always explicit: a service manager's environment (SYSTEM on Windows, a system
    unit's `User=`) would otherwise resolve a different default home than the user who installed.
    """
    return (str(python), "-m", "llama_orchestrator", "--home", str(home), "daemon", "run")


def entry_name(base: str, home: PurePath, host: HostFacts, *, casefold: bool = False) -> str:
    """`base` for the default home, else `base-<8 hex digits>` of a hash of the home's path, so two
    homes (two users, or two `LLAMA_ORCH_HOME`s of one) never share a unit, agent, task or service.
    `casefold`: Windows, where `C:\\Orch` and `c:\\orch` are one home."""
    if host.default_home is not None and same_home(home, host.default_home, casefold=casefold):
        return base
    key = str(home).casefold() if casefold else str(home)
    return f"{base}-{hashlib.sha256(key.encode('utf-8')).hexdigest()[:8]}"


def same_home(a: PurePath | str, b: PurePath | str, *, casefold: bool = False) -> bool:
    """Whether two spellings of a home are one directory (case-insensitively on Windows)."""
    return str(a).casefold() == str(b).casefold() if casefold else str(a) == str(b)


def forwarded_environment(environ: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The `FORWARDED_ENV` variables that `environ` sets (non-empty), in `FORWARDED_ENV` order."""
    return tuple((name, environ[name]) for name in FORWARDED_ENV if environ.get(name))


def stop_timeout_s(stop_graces_s: Iterable[float]) -> int:
    """Seconds a service manager should wait for the daemon to stop, given each instance's
    `restart.stop_grace_s`: 2 x the longest + `STOP_MARGIN_S`, and never less than `STOP_TIMEOUT_S`."""
    longest = max(stop_graces_s, default=0.0)
    return max(STOP_TIMEOUT_S, math.ceil(2 * longest) + STOP_MARGIN_S)
