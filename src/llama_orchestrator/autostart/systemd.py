"""systemd unit for the daemon: the user unit by default, a system unit with `--system`.

Pure: `render_unit()` returns the unit text, `plan_systemd()` the files and `systemctl` commands;
`executor` writes and runs them. Quoting follows systemd.syntax(7) "Quoting" and
systemd.service(5) "Command lines": arguments with spaces are double-quoted with C-style
escapes, `%` is doubled (specifiers) and, in `ExecStart=`, `$` is doubled (variable expansion).
"""

from __future__ import annotations

from pathlib import Path, PurePath

from llama_orchestrator.autostart.spec import (
    SERVICE_NAME,
    STOP_TIMEOUT_S,
    Command,
    HostFacts,
    Mode,
    RenderedFile,
    ServicePlan,
    daemon_argv,
    entry_name,
)
from llama_orchestrator.config.paths import ENV_HOME, HomePaths

UNIT_NAME = f"{SERVICE_NAME}.service"
"""The default home's unit; another home's is `unit_name()`."""
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")

_NEEDS_QUOTES = frozenset(" \t\n\"'\\;")


def user_unit_dir(host: HostFacts) -> Path:
    """Where systemd looks for the user's own units: `$XDG_CONFIG_HOME/systemd/user`."""
    return host.user_config_dir / "systemd" / "user"


def unit_name(paths: HomePaths, host: HostFacts) -> str:
    """The unit of this home: `llama-orchestrator.service` for the default home, else with its hash."""
    return f"{entry_name(SERVICE_NAME, paths.home, host)}.service"


def quote_exec_arg(arg: str) -> str:
    """Quote one `ExecStart=` argument so systemd splits it back to exactly `arg`."""
    escaped = arg.replace("%", "%%").replace("$", "$$")
    return _quote(escaped)


def quote_assignment(assignment: str) -> str:
    """Quote one `Environment=` assignment (`KEY=value`); specifiers are expanded there, `$` is not."""
    return _quote(assignment.replace("%", "%%"))


def _quote(text: str) -> str:
    if text and not any(c in _NEEDS_QUOTES for c in text):
        return text
    inner = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{inner}"'


def render_unit(
    paths: HomePaths,
    python: PurePath,
    *,
    system: bool,
    user: str,
    environment: tuple[tuple[str, str], ...] = (),
    stop_timeout_s: int = STOP_TIMEOUT_S,
) -> str:
    """Render the unit file text (user unit, or system unit running as `user`).

    `environment`: the forwarded variables of the installing shell (`spec.FORWARDED_ENV`), one
    `Environment=` line each. The daemon runs in the foreground and keeps logging to stderr,
    which the journal records.
    """
    exec_start = " ".join(quote_exec_arg(arg) for arg in daemon_argv(python, paths.home))
    unit = [
        "# Written by `llama-orch service install`; run it again instead of editing this file.",
        "[Unit]",
        "Description=llama-orchestrator daemon (supervises llama.cpp llama-server instances)",
    ]
    if system:
        unit += ["After=network-online.target", "Wants=network-online.target"]
    unit += [
        "# Never stop retrying: a crash loop stays visible in `systemctl status`, with growing delays.",
        "StartLimitIntervalSec=0",
        "",
        "[Service]",
        "Type=simple",
    ]
    if system:
        unit.append(f"User={user}")
    unit += [
        f"ExecStart={exec_start}",
        f"Environment={quote_assignment(f'{ENV_HOME}={paths.home}')}",
        "Environment=PYTHONUNBUFFERED=1",
    ]
    if environment:
        unit.append("# Copied from the environment `llama-orch service install` ran in.")
        unit += [f"Environment={quote_assignment(f'{name}={value}')}" for name, value in environment]
    unit += [
        "Restart=on-failure",
        "RestartSec=2",
        "# Exponential restart delay, 2 s up to 300 s (the instances' own curve). RestartSteps= and",
        "# RestartMaxDelaySec= need systemd >= 254; older versions log 'Unknown key name' and ignore",
        "# them, which leaves a fixed 2 s delay.",
        "RestartSteps=8",
        "RestartMaxDelaySec=300",
        "# KillMode=process: `systemctl stop` signals only the daemon. The daemon stops its",
        "# llama-server children itself (or leaves them running with --keep-instances), and a",
        "# restarted daemon re-adopts the children that are still alive. The default",
        "# (control-group) would kill every loaded model whenever the daemon stops or crashes.",
        "# systemd may log 'left-over process' for adopted children on restart; that is expected.",
        "KillMode=process",
        "# Longer than the daemon's own stop: up to 2 x stop_grace_s per instance (requests in flight,",
        "# then the grace before the kill), in parallel. Install again after raising stop_grace_s.",
        f"TimeoutStopSec={stop_timeout_s}",
        "",
        "[Install]",
        f"WantedBy={'multi-user.target' if system else 'default.target'}",
        "",
    ]
    return "\n".join(unit)


def plan_systemd(
    paths: HomePaths,
    python: PurePath,
    host: HostFacts,
    *,
    mode: Mode = "logon",
    system: bool = False,
    unit_dir: Path | None = None,
    stop_timeout_s: int = STOP_TIMEOUT_S,
) -> ServicePlan:
    """Plan the unit file and the `systemctl` calls that enable, disable and inspect it.

    `unit_dir` overrides where the unit is written (tests point it at a temp dir). A user unit
    with `mode="boot"` also enables lingering, so the user's manager starts at boot.
    `stop_timeout_s` is `TimeoutStopSec=` (`spec.stop_timeout_s()` of the home's configs).
    """
    directory = unit_dir or (SYSTEM_UNIT_DIR if system else user_unit_dir(host))
    name = unit_name(paths, host)
    unit_path = directory / name
    systemctl = ("systemctl",) if system else ("systemctl", "--user")
    install = [
        Command((*systemctl, "daemon-reload")),
        Command((*systemctl, "enable", "--now", name)),
    ]
    notes = [
        f"If the daemon was already running, `{' '.join(systemctl)} restart {name}` applies a "
        "changed unit (it stops and restarts the instances).",
        f"Logs of the daemon itself: `journalctl {'' if system else '--user '}-u {name}`.",
    ]
    if system:
        notes.append("A system unit needs root: run the install with sudo.")
    elif mode == "boot":
        install.insert(0, Command(("loginctl", "enable-linger", host.user)))
        notes.append(
            "Lingering is enabled so the user unit starts at boot; uninstall leaves it on "
            f"(`loginctl disable-linger {host.user}` turns it off)."
        )
    else:
        notes.append(
            "A user unit starts when you log in. To start at boot without logging in, run "
            f"`loginctl enable-linger {host.user}` (or install with --mode boot)."
        )
    return ServicePlan(
        backend="systemd",
        name=name,
        files=(
            RenderedFile(
                unit_path,
                render_unit(
                    paths, python, system=system, user=host.user,
                    environment=host.environment, stop_timeout_s=stop_timeout_s,
                ),
            ),
        ),
        install_commands=tuple(install),
        uninstall_commands=(Command((*systemctl, "disable", "--now", name), check=False),),
        post_uninstall_commands=(
            Command((*systemctl, "daemon-reload")),
            Command((*systemctl, "reset-failed", name), check=False),
        ),
        status_commands=(
            Command((*systemctl, "is-enabled", name), check=False),
            Command((*systemctl, "is-active", name), check=False),
        ),
        notes=tuple(notes),
    )
