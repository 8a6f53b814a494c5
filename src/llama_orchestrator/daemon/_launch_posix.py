"""POSIX twin of `_launch_windows`: a new session, so the terminal's hangup does not reach the daemon."""

from __future__ import annotations

import sys
from typing import Any


def detached_kwargs() -> dict[str, Any]:
    return {"start_new_session": True}


def interpreter() -> str:
    return sys.executable
