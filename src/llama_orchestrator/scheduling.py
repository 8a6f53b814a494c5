"""How the daemon's threads are scheduled on Linux: SCHED_BATCH, so that waking up does not preempt.

    with scheduling.batch():          # the daemon's loop (daemon.entry) and the benchmark's gateway
        eventloop.run(main())
    with scheduling.normal_for_children():
        subprocess.Popen(...)         # a llama-server runs with the normal policy (engine.spawn)

The daemon wakes for every request, every streamed event and every probe, and does a little
work each time. A normal thread that wakes preempts whatever runs on its core: with the cores
busy (llama-server on the CPU backend, or the gateway's benchmark on 2 cores) that is a
llama-server thread, or the process feeding the gateway, once per wake-up. Under SCHED_BATCH
the daemon runs on an idle core at once, as before, and on a busy one when the running task's
slice ends: the same share of the CPU (nice stays 0), fewer preemptions, more done per wake-up.
On the gateway benchmark's mock at c=32 that is worth about a sixth more streams per second.

Threads the daemon starts inherit the policy; a llama-server it spawns does not. macOS and
Windows have no such policy: nothing changes there. `LLAMA_ORCH_SCHED=normal` turns it off, to
compare or to rule it out in a bug report. L0: stdlib only.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

ENV_SCHED = "LLAMA_ORCH_SCHED"
_BATCH: int = getattr(os, "SCHED_BATCH", -1)  # Linux only
_NORMAL: int = getattr(os, "SCHED_OTHER", -1)
_HAVE_BATCH = _BATCH >= 0 and _NORMAL >= 0 and hasattr(os, "sched_setscheduler")
_applied = 0  # `batch` blocks inside which this process is under SCHED_BATCH by our doing


def policy_name() -> str:
    """The calling thread's policy, for a log line: "batch", "normal" or "other"."""
    if not _HAVE_BATCH:
        return "normal"
    try:
        policy = os.sched_getscheduler(0)
    except OSError:
        return "normal"
    return {_BATCH: "batch", _NORMAL: "normal"}.get(policy, "other")


def _switch(from_: int, to: int) -> bool:
    """Put the calling thread under policy `to` (priority 0) if it is under `from_`; whether it did."""
    try:
        if os.sched_getscheduler(0) != from_:
            return False  # a policy someone chose (chrt): keep it
        os.sched_setscheduler(0, to, os.sched_param(0))
    except OSError:  # a seccomp profile may forbid it: run as we are
        return False
    return True


@contextlib.contextmanager
def batch(environ: Mapping[str, str] | None = None) -> Iterator[str]:
    """SCHED_BATCH for the calling thread (and the threads it starts) while inside, where Linux has
    it and `LLAMA_ORCH_SCHED` is not `normal`; yields the policy the thread runs under."""
    global _applied
    env = os.environ if environ is None else environ
    switched = _HAVE_BATCH and env.get(ENV_SCHED, "").strip().lower() != "normal" and _switch(_NORMAL, _BATCH)
    _applied += switched
    try:
        yield policy_name()
    finally:
        if switched:
            _applied -= 1
            _switch(_BATCH, _NORMAL)  # tests run the daemon in-process: leave the thread as found


@contextlib.contextmanager
def normal_for_children() -> Iterator[None]:
    """The normal policy for the calling thread while inside, if `batch` gave it SCHED_BATCH, so
    that a process it starts (which inherits the policy of the thread that forks it) does not."""
    switched = _HAVE_BATCH and _applied > 0 and _switch(_BATCH, _NORMAL)
    try:
        yield
    finally:
        if switched:
            _switch(_NORMAL, _BATCH)
