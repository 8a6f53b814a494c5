"""Free TCP ports for servers started by tests.

bind(0)+close has a small race (another process may take the port before our server binds
it); servers started here bind within milliseconds, and a test that hits the race fails
loudly with "couldn't bind", so we accept it rather than hide it.
"""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that was free a moment ago."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
