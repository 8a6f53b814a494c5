"""Windows twin of `_launch_posix`: detached, its own process group, no console window.

pythonw.exe (beside python.exe) is used when present so no console flashes up.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

DETACHED_PROCESS = 0x00000008
CREATE_NEW_PROCESS_GROUP = 0x00000200
CREATE_NO_WINDOW = 0x08000000
CREATE_BREAKAWAY_FROM_JOB = 0x01000000


def detached_kwargs() -> dict[str, Any]:
    flags = DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW
    return {"creationflags": flags}


def interpreter() -> str:
    windowless = Path(sys.executable).with_name("pythonw.exe")
    return str(windowless) if windowless.exists() else sys.executable
