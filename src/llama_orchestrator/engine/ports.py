"""Is host:port free, and if not, who holds it (DESIGN 4: check the exact host:port first).

"Taken" is decided by binding the exact host:port ourselves, the way llama-server will:
with SO_REUSEADDR on POSIX (Linux still refuses a port somebody listens on, but ignores
TIME_WAIT leftovers of a server we just stopped, so a restart is not a false "taken"), and with
SO_EXCLUSIVEADDRUSE on Windows (there SO_REUSEADDR would let us share a listening port,
llama-swap#57). Because BSD/macOS allow binding 127.0.0.1:P while *:P listens when
SO_REUSEADDR is set, a visible listener on the wildcard address also counts as taken.
Nothing here signals the holder: a foreign process is reported, never touched.
"""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import psutil

from llama_orchestrator._platform import IS_WINDOWS

WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
_IN_USE_ERRNOS = frozenset({errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", errno.EADDRINUSE)})

__all__ = ["PortHolder", "is_port_free", "port_holder"]


@dataclass(frozen=True, slots=True)
class PortHolder:
    """Who listens on a port; both None when the port is taken but the holder is invisible."""

    pid: int | None
    name: str | None


def _can_bind(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        if IS_WINDOWS:
            sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_EXCLUSIVEADDRUSE", -5), 1)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in _IN_USE_ERRNOS or getattr(exc, "winerror", None) == 10048:
                return False
            raise
    return True


_PROC_NET_TCP = ("/proc/net/tcp", "/proc/net/tcp6")
_TCP_LISTEN = "0A"


def _no_listener_on_linux(port: int) -> bool:
    """True when /proc/net/tcp{,6} shows no listening socket on `port` at any address (Linux).

    The cheap half of `psutil.net_connections`, which also maps every socket to its pid by
    reading every process's fds (tens of ms, blocking the daemon's loop). When nobody listens
    there is no holder to name, so the expensive scan is skipped. False when /proc is unreadable.
    """
    suffix = f":{port:04X}"
    try:
        for table in _PROC_NET_TCP:
            with open(table, encoding="ascii") as lines:
                next(lines, None)
                for line in lines:
                    fields = line.split(None, 4)
                    if len(fields) > 3 and fields[3] == _TCP_LISTEN and fields[1].endswith(suffix):
                        return False
    except OSError:
        return False
    return True


def _listeners() -> Iterable[Any]:
    try:
        return list(psutil.net_connections(kind="tcp"))
    except psutil.AccessDenied:  # macOS without root: ask process by process
        found: list[Any] = []
        for proc in psutil.process_iter():
            try:
                found.extend(
                    SimpleNamespace(laddr=conn.laddr, status=conn.status, pid=proc.pid)
                    for conn in proc.net_connections(kind="tcp")
                )
            except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
        return found


def _find_listener(host: str, port: int) -> tuple[bool, PortHolder | None]:
    """Return (someone listens that matters, the best holder we could identify)."""
    host_wild = host in WILDCARD_HOSTS
    seen = False
    for conn in _listeners():
        if conn.status != psutil.CONN_LISTEN or not conn.laddr or conn.laddr.port != port:
            continue
        ip = conn.laddr.ip
        if not (host_wild or ip == host or ip in WILDCARD_HOSTS or ip == "::ffff:" + host):
            continue
        seen = True
        if conn.pid is not None:
            return True, PortHolder(pid=conn.pid, name=_process_name(conn.pid))
    return seen, None


def _process_name(pid: int) -> str | None:
    try:
        name: str = psutil.Process(pid).name()
    except psutil.Error:
        return None
    return name


def port_holder(host: str, port: int) -> PortHolder | None:
    """Return who holds host:port (pid/name None when invisible), or None when it is free.

    Raises:
        OSError: the address cannot be bound for another reason (EADDRNOTAVAIL: not a local
            address; EACCES: privileged port); the caller names the instance in a SpawnError.
    """
    bindable = _can_bind(host, port)
    if bindable and sys.platform == "linux" and _no_listener_on_linux(port):
        return None  # the answer the full scan below would give, without reading every process's fds
    listening, holder = _find_listener(host, port)
    if bindable and not listening:
        return None
    return holder if holder is not None else PortHolder(pid=None, name=None)


def is_port_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port (or on the wildcard address at that port)."""
    return port_holder(host, port) is None
