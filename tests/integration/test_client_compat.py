"""A newer CLI against an older daemon: any HTTP answer on the control port means it is alive."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from llama_orchestrator.daemon.client import DaemonClient, RemoteError

pytestmark = pytest.mark.integration


class _OldDaemon(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 401 if self.headers.get("Authorization") != "Bearer right" else 404
        body = b'{"error": {"message": "missing or wrong control token", "exit_code": 1}}' if code == 401 else b"nope"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def old_daemon() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OldDaemon)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_ping_accepts_a_daemon_without_the_ping_route_but_not_a_wrong_token(old_daemon: int) -> None:
    DaemonClient("127.0.0.1", old_daemon, "right").ping()
    with pytest.raises(RemoteError) as caught:
        DaemonClient("127.0.0.1", old_daemon, "wrong").ping()
    assert caught.value.status == 401 and "token" in str(caught.value)
