"""The one place that picks the platform's process-tree operations (`_posix` or `_windows`).

Both modules expose the same functions: `popen_kwargs`, `after_spawn`, `terminate_tree`,
`kill_tree_now`, `release`. The Windows module is imported only on Windows.
"""

from __future__ import annotations

from llama_orchestrator._platform import IS_WINDOWS

if IS_WINDOWS:
    from llama_orchestrator.engine._windows import (
        after_spawn,
        kill_tree_now,
        popen_kwargs,
        release,
        terminate_tree,
    )
else:
    from llama_orchestrator.engine._posix import (
        after_spawn,
        kill_tree_now,
        popen_kwargs,
        release,
        terminate_tree,
    )

__all__ = ["after_spawn", "kill_tree_now", "popen_kwargs", "release", "terminate_tree"]
