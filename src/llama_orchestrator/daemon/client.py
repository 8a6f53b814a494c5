"""`DaemonClient`: how the CLI and the dashboard reach the daemon (stdlib http.client only).

No aiohttp, no engine, no store: importing this stays cheap, so `llama-orch ps` starts fast.
The address and token come from `<home>/run/control.json`. Streams (events, logs) are read line
by line from one long response: clients follow them without polling.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from llama_orchestrator.config.paths import HomePaths
from llama_orchestrator.daemon.protocol import (
    ActionRequest,
    ActionResult,
    DaemonStatus,
    EventOut,
    InstanceDetail,
    InstanceStatus,
)
from llama_orchestrator.errors import (
    EXIT_DAEMON,
    ConfigError,
    ConfigProblem,
    DaemonError,
    DaemonNotRunningError,
    OrchestratorError,
)

DEFAULT_TIMEOUT_S = 30.0
T = TypeVar("T")


class RemoteError(OrchestratorError):
    """An error the daemon reported; carries the exit code it chose."""

    def __init__(self, message: str, exit_code: int, hint: str | None, status: int | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code
        self.status = status


def _control_record(paths: HomePaths) -> Any:
    """What the running daemon wrote in its control file (OSError, ValueError when unreadable)."""
    return json.loads(paths.control_file.read_text(encoding="utf-8"))


def recorded_address(paths: HomePaths) -> str | None:
    """host:port of the control API the running daemon recorded, if its control file is readable."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        data = _control_record(paths)
        return f"{data['host']}:{data['port']}"
    return None


class DaemonClient:
    def __init__(self, host: str, port: int, token: str, pid: int | None = None) -> None:
        self.host = host
        self.port = port
        self.pid = pid
        self._token = token

    @classmethod
    def connect(cls, paths: HomePaths) -> DaemonClient:
        """Read the control file and check the daemon answers; raise DaemonNotRunningError otherwise."""
        try:
            data = _control_record(paths)
            client = cls(str(data["host"]), int(data["port"]), str(data["token"]), int(data.get("pid") or 0) or None)
        except (OSError, ValueError, KeyError) as exc:
            raise DaemonNotRunningError(
                f"no daemon is running for {paths.home}", hint="start it with `llama-orch daemon start`"
            ) from exc
        client.ping()
        return client

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # ---- requests ------------------------------------------------------------------------
    def _open(self, method: str, path: str, body: object | None, timeout_s: float | None) -> http.client.HTTPResponse:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        conn = http.client.HTTPConnection(host, self.port, timeout=timeout_s)
        headers = {"Authorization": f"Bearer {self._token}", "Host": f"{host}:{self.port}"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
        except OSError as exc:
            conn.close()
            if isinstance(exc, TimeoutError):
                raise DaemonError(f"the daemon at {self.address} did not answer in time") from exc
            raise DaemonNotRunningError(
                f"cannot reach the daemon at {self.address}: {exc.strerror or exc}",
                hint="start it with `llama-orch daemon start`",
            ) from exc
        if response.status >= 400:
            raw = response.read()
            conn.close()
            raise _error_from(response.status, raw)
        return response

    def _json(
        self, method: str, path: str, body: object | None = None, timeout_s: float | None = DEFAULT_TIMEOUT_S
    ) -> Any:
        response = self._open(method, path, body, timeout_s)
        try:
            return json.loads(response.read())
        finally:
            response.close()

    def ping(self) -> None:
        """Any HTTP answer proves the daemon lives; a daemon older than this client has no /v1/ping."""
        try:
            self._json("GET", "/v1/ping", timeout_s=5.0)
        except RemoteError as exc:
            if exc.status != 404:
                raise

    def status(self) -> DaemonStatus:
        return DaemonStatus.model_validate(self._json("GET", "/v1/status"))

    def instances(self) -> list[InstanceStatus]:
        return [InstanceStatus.model_validate(x) for x in self._json("GET", "/v1/instances")]

    def inspect(self, name: str) -> InstanceDetail:
        return InstanceDetail.model_validate(self._json("GET", f"/v1/instances/{name}"))

    def act(self, action: str, names: list[str], wait_s: float | None = None) -> ActionResult:
        """Queue start/stop/restart/up/down; with `wait_s`, return once each named instance settled."""
        body = ActionRequest(names=names, wait_s=wait_s).model_dump()
        timeout = None if wait_s is not None else DEFAULT_TIMEOUT_S
        return ActionResult.model_validate(self._json("POST", f"/v1/actions/{action}", body, timeout_s=timeout))

    def remove(self, name: str) -> None:
        self._json("DELETE", f"/v1/instances/{name}", timeout_s=None)

    def reload(self) -> list[str]:
        return list(self._json("POST", "/v1/reload", {})["problems"])

    def shutdown(self, *, keep_instances: bool = False) -> None:
        self._json("POST", "/v1/shutdown", {"keep_instances": keep_instances})

    def events(self, instance: str | None = None, after_id: int = 0, *, follow: bool = False,
               limit: int = 1000, tail: int | None = None) -> Stream[EventOut]:
        """Transitions after `after_id` (-1: only new ones), or the newest `tail`; with `follow`, then live."""
        query: dict[str, object] = {"after": after_id, "limit": limit, "follow": "1" if follow else "0"}
        if instance:
            query["instance"] = instance
        if tail is not None:
            query["tail"] = tail
        return Stream(self._open("GET", f"/v1/events?{urlencode(query)}", None, None), EventOut.model_validate_json)

    def logs(self, name: str, lines: int = 100, *, follow: bool = False) -> Stream[str]:
        query = urlencode({"n": lines, "follow": "1" if follow else "0"})
        return Stream(self._open("GET", f"/v1/instances/{name}/logs?{query}", None, None), str)


class Stream(Generic[T]):
    """A streamed answer read line by line. The request is sent when the stream is created (so it
    starts before the caller's next command); `close()` may be called from any thread and ends a
    blocked read at once."""

    def __init__(self, response: http.client.HTTPResponse, parse: Callable[[str], T]) -> None:
        self._response = response
        self._parse = parse
        self._closed = False

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        try:
            raw = b"" if self._closed else self._response.readline()
        except (OSError, ValueError, AttributeError):
            raw = b""  # closed from another thread while blocked
        if not raw:
            self.close()
            raise StopIteration
        return self._parse(raw.decode("utf-8", errors="replace").rstrip("\n"))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        sock = getattr(getattr(self._response, "fp", None), "raw", None)
        sock = getattr(sock, "_sock", None)
        with contextlib.suppress(OSError):
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError, ValueError, AttributeError):
            self._response.close()

    def __enter__(self) -> Stream[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _error_from(status: int, raw: bytes) -> OrchestratorError:
    try:
        error = json.loads(raw)["error"]
    except (ValueError, KeyError, TypeError):
        return RemoteError(f"daemon answered HTTP {status}: {raw[:200]!r}", EXIT_DAEMON, None, status)
    if error.get("problems") is not None:
        problems = [ConfigProblem(p["file"], p["field"], p["message"], p.get("line"), p.get("column"))
                    for p in error["problems"]]
        if problems:
            return ConfigError(problems, hint=error.get("hint"))
    return RemoteError(str(error.get("message")), int(error.get("exit_code", 1)), error.get("hint"), status)
