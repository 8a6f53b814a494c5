"""The daemon's scheduling policy: SCHED_BATCH on Linux while `batch` is in force, as found after,
and only where nobody chose another policy."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

import pytest

from llama_orchestrator import scheduling

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_BATCH is Linux's")
T = TypeVar("T")


def in_a_thread(body: Callable[[], T]) -> T:
    """`body()` in a new thread: a policy is per thread, and pytest's own is left alone."""
    out: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.append(body())
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    if errors:
        raise errors[0]
    return out[0]


def test_batch_puts_the_thread_and_the_threads_it_starts_under_sched_batch_then_restores() -> None:
    def body() -> tuple[str, int, int, int]:
        with scheduling.batch({}) as name:
            inside = os.sched_getscheduler(0)
            started = in_a_thread(lambda: os.sched_getscheduler(0))
        return name, inside, started, os.sched_getscheduler(0)

    assert in_a_thread(body) == ("batch", os.SCHED_BATCH, os.SCHED_BATCH, os.SCHED_OTHER)


def test_llama_orch_sched_normal_keeps_the_normal_policy() -> None:
    def body() -> tuple[str, int]:
        with scheduling.batch({scheduling.ENV_SCHED: " Normal "}) as name:
            return name, os.sched_getscheduler(0)

    assert in_a_thread(body) == ("normal", os.SCHED_OTHER)


def test_a_policy_someone_chose_is_kept() -> None:
    def body() -> tuple[str, int, int]:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # as `chrt --idle` would
        with scheduling.batch({}) as name:
            inside = os.sched_getscheduler(0)
            with scheduling.normal_for_children():
                spawning = os.sched_getscheduler(0)
        return name, inside, spawning

    assert in_a_thread(body) == ("other", os.SCHED_IDLE, os.SCHED_IDLE)


def test_normal_for_children_undoes_batch_only_while_inside() -> None:
    def body() -> tuple[int, int, int]:
        outside = -1
        with scheduling.normal_for_children():
            outside = os.sched_getscheduler(0)  # no batch in force: nothing to undo
        with scheduling.batch({}), scheduling.normal_for_children():
            spawning = os.sched_getscheduler(0)
        with scheduling.batch({}):
            with scheduling.normal_for_children():
                pass
            after = os.sched_getscheduler(0)
        return outside, spawning, after

    assert in_a_thread(body) == (os.SCHED_OTHER, os.SCHED_OTHER, os.SCHED_BATCH)
