"""Which operating system we run on, normalised once (L0: stdlib only)."""

from __future__ import annotations

import sys
from typing import Literal

PlatformName = Literal["linux", "macos", "windows"]


def current_platform() -> PlatformName:
    """Return the normalised name of the running platform."""
    if sys.platform == "win32":
        return "windows"
    if sys.platform == "darwin":
        return "macos"
    return "linux"


PLATFORM: PlatformName = current_platform()
IS_WINDOWS: bool = PLATFORM == "windows"
