"""Free TCP ports for servers started by tests.

Ports come from below every OS's ephemeral range (Linux 32768+, Windows and macOS 49152+): a port
from bind(0) is one the kernel may give the next outgoing connection, and a daemon probing its
instances opens many, so between a test choosing a port and llama-server binding it a probe's
socket held it (the daemon then rightly reported "port-in-use ... held by" itself). Within one
process the ports go up from a random start, so two tests never get the same one. The remaining
race (another program binds the port first) fails loudly with "couldn't bind".
"""

from __future__ import annotations

import itertools
import random
import socket

_FIRST, _LAST = 20000, 32000  # below the ephemeral ranges
_START = random.randrange(_FIRST, _LAST)
_ports = itertools.cycle(itertools.chain(range(_START, _LAST), range(_FIRST, _START)))


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that was free a moment ago and is not an ephemeral one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(_LAST - _FIRST):
        port = next(_ports)
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free TCP port on {host} between {_FIRST} and {_LAST}")
