"""One predict call on a replica's thread pool that can be given up: at its deadline (the
endpoint's task_timeout_seconds) or when its caller cancels it (a cancelled task, a client that
went away).

Python cannot kill a thread. Giving up a call does two things: the caller gets its answer now
(a FAILURE naming the limit, or its cancellation), so the request's slot is freed and a late
result is dropped; and the thread running the user's code gets a `CallStopped` exception raised
in it (PyThreadState_SetAsyncExc), which Python delivers at the next bytecode the thread runs.
That stops pure-Python code, loops that sleep or wait in short steps included, but not a single
long call into C (one `time.sleep(3600)`, a blocking socket read, a CUDA kernel): such a call
keeps its thread until it returns, and the pool's next request waits for that thread. The
exception derives from BaseException, so user code's `except Exception` does not swallow it.

The clock starts when the thread starts the call, not when it is queued, so requests waiting
behind a busy thread are not charged for the wait."""

from __future__ import annotations

import asyncio
import ctypes
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, Generic, TypeVar

from launch_server.domain.requests import InferenceAnswer
from launch_server.replica.failures import failed
from launch_server.replica.figures_reporter import FIGURES

W = TypeVar("W")
R = TypeVar("R")


class CallStopped(BaseException):  # noqa: N818 - raised inside user code, named for what happened
    """Raised in a predict thread whose call was given up."""


def timeout_message(timeout_s: float) -> str:
    return f"task exceeded its endpoint's task_timeout_seconds={timeout_s:g}"


class _Running:
    """The thread running one call, and whether that call was given up (both under `lock`, so the
    exception is only ever raised while the user's code runs, never in the pool's own code)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.thread_id: int | None = None
        self.given_up = False

    def give_up(self) -> None:
        with self.lock:
            if self.given_up:
                return
            self.given_up = True
            if self.thread_id is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self.thread_id), ctypes.py_object(CallStopped)
                )

    def enter(self) -> bool:
        with self.lock:
            if self.given_up:
                return False  # given up while it waited in the pool's queue: never started
            self.thread_id = threading.get_ident()
            return True

    def leave(self) -> None:
        with self.lock:
            thread_id, self.thread_id = self.thread_id, None
            if self.given_up and thread_id is not None:
                # Clears an exception raised but not yet delivered (the call returned just then),
                # so it cannot fire later in the pool's code or in the next request.
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)


class StoppableCall(Generic[R]):
    """fn(arg) started now on `executor` from the running loop: `future` is its value (None when
    it was given up before or while it ran), `started` is set once a thread begins it, and
    give_up() stops it as the module docstring says. run_stoppable is the usual way to await one;
    streams (streams.py) hold one per generator step."""

    def __init__(self, executor: Executor, fn: Callable[[W], R], arg: W, count_wait: bool = False) -> None:
        """`count_wait`: the time it waits for a pool thread is one request's queue wait."""
        loop = asyncio.get_running_loop()
        running = self._running = _Running()
        started = self.started = asyncio.Event()
        queued = time.perf_counter()

        def call() -> R | None:
            if not running.enter():
                return None
            if count_wait:
                FIGURES.observe("queue_wait", time.perf_counter() - queued)
            try:
                loop.call_soon_threadsafe(started.set)
                return fn(arg)
            except CallStopped:
                return None
            finally:
                running.leave()

        self.future: asyncio.Future[R | None] = loop.run_in_executor(executor, call)
        self.future.add_done_callback(_consume)

    def give_up(self) -> None:
        self._running.give_up()

    async def wait_started(self) -> None:
        """Returns once a thread started the call, or it ended without starting."""
        if self.started.is_set() or self.future.done():
            return
        waiting = asyncio.ensure_future(self.started.wait())
        try:
            await asyncio.wait({self.future, waiting}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()


async def run_stoppable(
    executor: Executor,
    fn: Callable[[W], InferenceAnswer],
    request: W,
    timeout_s: float | None = None,
    count_wait: bool = True,
) -> InferenceAnswer:
    """fn(request) on `executor`; past `timeout_s` seconds of running (None or 0: no limit) it is
    given up and answered as a FAILURE; if the awaiting task is cancelled, it is given up and the
    cancellation goes on. `count_wait`: its wait for the pool is a request's queue wait."""
    call = StoppableCall(executor, fn, request, count_wait=count_wait)
    try:
        if not timeout_s:
            answer = await asyncio.shield(call.future)
        else:
            await call.wait_started()
            answer = await asyncio.wait_for(asyncio.shield(call.future), timeout_s)
    except TimeoutError:
        call.give_up()
        return failed(timeout_message(timeout_s or 0))
    except asyncio.CancelledError:
        call.give_up()
        raise
    # None only for a call given up, and only this function gives it up (and then does not get here).
    return answer if answer is not None else InferenceAnswer.failure("the call was stopped")


def _consume(future: asyncio.Future[Any]) -> None:
    """A given-up call's future is never awaited: read its outcome so asyncio does not log it."""
    if not future.cancelled():
        future.exception()
