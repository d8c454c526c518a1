"""replica/stoppable: a predict call on a thread pool that is given up at its deadline or when
its caller is cancelled; the thread's Python code is stopped, and the pool serves the next call."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from launch_server.domain.requests import InferenceAnswer
from launch_server.replica.stoppable import CallStopped, run_stoppable


class Spinner:
    """A predict function that loops in short sleeps, counting, until told to finish."""

    def __init__(self) -> None:
        self.count = 0
        self.started = threading.Event()
        self.stopped_by: BaseException | None = None

    def __call__(self, request: dict[str, Any]) -> InferenceAnswer:
        self.started.set()
        try:
            end = time.monotonic() + request.get("seconds", 3600)
            while time.monotonic() < end:
                self.count += 1
                time.sleep(0.01)
        except BaseException as exc:
            self.stopped_by = exc
            raise
        return InferenceAnswer(state="SUCCESS", result=str(self.count))


def wait_until_still(spinner: Spinner) -> int:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        before = spinner.count
        time.sleep(0.1)
        if spinner.count == before:
            return before
    raise AssertionError("the call kept running")


@pytest.fixture
def pool() -> ThreadPoolExecutor:
    executor = ThreadPoolExecutor(max_workers=1)
    yield executor
    executor.shutdown(wait=True)


def test_a_call_past_its_timeout_is_answered_failure_and_its_code_stops(pool: ThreadPoolExecutor) -> None:
    spinner = Spinner()
    answer = asyncio.run(run_stoppable(pool, spinner, {}, timeout_s=0.3))
    assert answer == InferenceAnswer(state="FAILURE", traceback="task exceeded its endpoint's task_timeout_seconds=0.3")
    wait_until_still(spinner)
    assert isinstance(spinner.stopped_by, CallStopped)
    # The pool's one thread is free, and no stray exception reaches the next call.
    quick = Spinner()
    assert asyncio.run(run_stoppable(pool, quick, {"seconds": 0.05}, timeout_s=5)).state == "SUCCESS"


def test_a_cancelled_call_is_stopped(pool: ThreadPoolExecutor) -> None:
    spinner = Spinner()

    async def cancel_while_running() -> None:
        call = asyncio.ensure_future(run_stoppable(pool, spinner, {}))
        await asyncio.to_thread(spinner.started.wait, 5)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    asyncio.run(cancel_while_running())
    wait_until_still(spinner)
    assert isinstance(spinner.stopped_by, CallStopped)


def test_the_clock_starts_when_the_call_starts_not_while_it_waits(pool: ThreadPoolExecutor) -> None:
    """A call queued behind a busy thread is not charged for the wait; one given up while queued
    never runs."""
    first, second, never = Spinner(), Spinner(), Spinner()

    async def queued() -> tuple[InferenceAnswer, InferenceAnswer]:
        busy = asyncio.ensure_future(run_stoppable(pool, first, {"seconds": 0.6}, timeout_s=5))
        await asyncio.to_thread(first.started.wait, 5)
        waiting = asyncio.ensure_future(run_stoppable(pool, second, {"seconds": 0.3}, timeout_s=0.5))
        dropped = asyncio.ensure_future(run_stoppable(pool, never, {"seconds": 0.1}))
        await asyncio.sleep(0.05)
        dropped.cancel()
        return await busy, await waiting

    first_answer, second_answer = asyncio.run(queued())
    assert first_answer.state == "SUCCESS" and second_answer.state == "SUCCESS"
    assert not never.started.is_set()
