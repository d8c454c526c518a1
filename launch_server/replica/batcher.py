"""Dynamic batching: requests a replica holds at once go into one call of its batch function
(batching.py says what a batch function is). Every request reaches it here, whichever path it
came by (direct route, Serve handle, task channel, a dispatcher's group), so all of them share
batches.

How a batch forms, on the replica loop:
- The function runs one batch at a time. A request that arrives while it is idle starts a batch
  at once; requests that arrive while a batch runs wait and go into the next one together, up to
  max_batch_size, oldest first. Load makes batches; light traffic pays no wait.
- Only when max_wait_ms is above 0 does a batch that is not full wait for more, at most that long
  after its oldest request arrived, and never beyond half the time the most urgent request in it
  has left (the other half is for the function).
- A request's input is decoded before it joins (its url read, its arguments parsed), so one bad
  input fails only that request.
- A request leaves when its caller cancels or its deadline passes: waiting, it simply never joins a
  batch; in a running batch, its result is dropped and the others go on. A batch all of whose
  requests have left is given up like a single call (stoppable.py). `timeout_s` (an async task's
  task_timeout_seconds) runs from the moment the request's batch starts, as it does without
  batching from the moment its call starts.
- A raise in the batch function fails every request of that batch with its traceback, and so does
  a result that is not one value per request. Each result is then answered as that request asks
  (pickled and stored, or JSON text), failing only its own request when it cannot be."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any

from launch_server.domain.requests import InferenceAnswer, InferenceRequest
from launch_server.replica.batching import BatchLimits
from launch_server.replica.bundle_runtime import BundleRuntime
from launch_server.replica.failures import reason_of
from launch_server.replica.stoppable import StoppableCall, timeout_message

DEADLINE_MESSAGE = "the request's deadline passed while it waited for a batch"
RAN_PAST_DEADLINE = "the request's deadline passed while its batch ran"


class _Entry:
    """One request in the batcher: waiting, then in a batch, then answered or gone."""

    __slots__ = ("request", "item", "future", "arrived", "deadline", "timeout_s", "started", "batch")

    def __init__(
        self, request: InferenceRequest, item: Any, future: asyncio.Future[InferenceAnswer], arrived: float
    ) -> None:
        self.request = request
        self.item = item
        self.future = future
        self.arrived = arrived
        self.deadline: float | None = None  # loop time after which its caller no longer waits
        self.timeout_s: float | None = None
        self.started: asyncio.Future[float] | None = None  # the loop time its batch started
        self.batch: _Batch | None = None

    @property
    def gone(self) -> bool:
        return self.future.done()

    def answer(self, answer: InferenceAnswer) -> None:
        if not self.future.done():
            self.future.set_result(answer)

    def leave(self, answer: InferenceAnswer | None = None) -> None:
        """Out of its batch (or of the queue) for good; the batch stops when nobody is left in it."""
        if answer is not None:
            self.answer(answer)
        elif not self.future.done():
            self.future.cancel()
        if self.batch is not None:
            self.batch.left()


class _Batch:
    """A running batch: how many of its requests still wait for it, and how to give it up."""

    def __init__(self, size: int) -> None:
        self.live = size
        self.stop: Callable[[], None] = lambda: None

    def left(self) -> None:
        self.live -= 1
        if self.live == 0:
            self.stop()


class Batcher:
    """Batches for one replica's batch function; lives on the replica loop."""

    def __init__(self, runtime: BundleRuntime, executor: Executor, limits: BatchLimits) -> None:
        self.runtime = runtime
        self.limits = limits
        self._executor = executor
        self._queue: deque[_Entry] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._arrival: asyncio.Event | None = None  # set on each arrival while a batch gathers

    async def answer(
        self, request: InferenceRequest, timeout_s: float | None = None, patience_s: float | None = None
    ) -> InferenceAnswer:
        """One request's answer from its batch; never raises for user errors. `timeout_s`: the
        run limit from its batch's start (None or 0: none); `patience_s`: how long its caller
        waits from now (None: no deadline)."""
        loop = asyncio.get_running_loop()
        arrived = loop.time()
        try:
            item = await self._decode(request)
        except (Exception, SystemExit) as exc:
            return InferenceAnswer.failure(reason_of(exc))
        entry = _Entry(request, item, loop.create_future(), arrived)
        if patience_s is not None:
            entry.deadline = arrived + max(0.0, patience_s)
        if timeout_s:
            entry.timeout_s = timeout_s
        if entry.deadline is not None or entry.timeout_s is not None:
            entry.started = loop.create_future()
        self._queue.append(entry)
        self._wake()
        try:
            return await self._outcome(entry)
        except asyncio.CancelledError:
            entry.leave()
            raise

    async def answer_many(
        self, requests: list[InferenceRequest], timeout_s: float | None = None
    ) -> list[InferenceAnswer]:
        """Answers in request order; requests that arrive together share batches where they fit."""
        return list(await asyncio.gather(*(self.answer(r, timeout_s) for r in requests)))

    async def _decode(self, request: InferenceRequest) -> Any:
        """The batch function's input for the request: a url is read off the loop (in its default
        executor, not the predict pool, which runs batches), arguments are parsed here."""
        if isinstance(request, InferenceRequest) and request.url:
            return await asyncio.get_running_loop().run_in_executor(None, self.runtime.batch_input, request)
        return self.runtime.batch_input(request)

    def _wake(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())
        elif self._arrival is not None:
            self._arrival.set()

    async def _outcome(self, entry: _Entry) -> InferenceAnswer:
        """Waits for the entry's answer within its deadline, and once its batch started, within
        its run limit."""
        future, started = entry.future, entry.started
        if started is None:
            return await future
        loop = asyncio.get_running_loop()
        if not started.done():
            await asyncio.wait(
                (future, started), timeout=_left(entry.deadline, loop), return_when=asyncio.FIRST_COMPLETED
            )
            if not future.done() and not started.done():
                entry.leave(InferenceAnswer.failure(DEADLINE_MESSAGE))
                return future.result()
        if not future.done():
            run_until = started.result() + entry.timeout_s if entry.timeout_s is not None else None
            until = min(t for t in (entry.deadline, run_until) if t is not None)
            await asyncio.wait((future,), timeout=_left(until, loop))
            if not future.done():
                ran_out = run_until is not None and loop.time() >= run_until
                entry.leave(
                    InferenceAnswer.failure(timeout_message(entry.timeout_s or 0) if ran_out else RAN_PAST_DEADLINE)
                )
        return future.result()

    # ----- the worker: one batch at a time -----

    async def _work(self) -> None:
        try:
            while batch := await self._gather():
                try:
                    await self._run(batch)
                except Exception as exc:  # noqa: BLE001 - our own failure: answered, or its callers wait forever
                    failure = InferenceAnswer.failure(f"the replica failed: {exc!r}")
                    for entry in batch:
                        entry.answer(failure)
        finally:
            # No await between the empty queue seen in _gather and here: nobody can be left waiting.
            self._worker = None

    def _waiting(self) -> int:
        while self._queue and self._queue[0].gone:
            self._queue.popleft()
        return sum(1 for entry in self._queue if not entry.gone)

    async def _gather(self) -> list[_Entry]:
        limits = self.limits
        waiting = self._waiting()
        if not waiting:
            return []
        if limits.max_wait_ms and waiting < limits.max_batch_size:
            await self._wait_for_more(limits)
        batch: list[_Entry] = []
        while self._queue and len(batch) < limits.max_batch_size:
            entry = self._queue.popleft()
            if not entry.gone:
                batch.append(entry)
        return batch

    async def _wait_for_more(self, limits: BatchLimits) -> None:
        """Until the batch is full, max_wait_ms after its oldest request, or half the most urgent
        one's time is spent."""
        loop = asyncio.get_running_loop()
        arrival = self._arrival = asyncio.Event()
        try:
            while True:
                head = [e for e in self._queue if not e.gone][: limits.max_batch_size]
                if not head or len(head) >= limits.max_batch_size:
                    return
                until = head[0].arrived + limits.max_wait_s
                for entry in head:
                    if entry.deadline is not None:
                        until = min(until, entry.arrived + (entry.deadline - entry.arrived) / 2)
                if loop.time() >= until:
                    return
                arrival.clear()
                try:
                    async with asyncio.timeout_at(until):
                        await arrival.wait()
                except TimeoutError:
                    return
        finally:
            self._arrival = None

    async def _run(self, entries: list[_Entry]) -> None:
        loop = asyncio.get_running_loop()
        batch = _Batch(len(entries))
        now = loop.time()
        for entry in entries:
            entry.batch = batch
            if entry.started is not None and not entry.started.done():
                entry.started.set_result(now)
        inputs = [entry.item for entry in entries]
        if self.runtime.kind.on_loop:
            task = loop.create_task(self._answers_async(inputs, entries))
            batch.stop = task.cancel
            try:
                answers = await task
            except asyncio.CancelledError:
                if not task.cancelled():  # the worker itself is being cancelled
                    raise
                return
        else:
            call = StoppableCall(self._executor, self._answers_sync, (inputs, entries))
            batch.stop = call.give_up
            answers = await asyncio.shield(call.future)
            if answers is None:  # given up: nobody waits for it
                return
        for entry, answer in zip(entries, answers, strict=True):
            entry.answer(answer)

    def _answers_sync(self, work: tuple[list[Any], list[_Entry]]) -> list[InferenceAnswer]:
        """In a predict-pool thread: the batch, then each result as its request asks."""
        inputs, entries = work
        runtime = self.runtime
        try:
            values = runtime.call_batch(inputs)
        except (Exception, SystemExit) as exc:
            failure = InferenceAnswer.failure(reason_of(exc))
            return [failure] * len(entries)
        return [_answer(runtime, entry, value) for entry, value in zip(entries, values, strict=True)]

    async def _answers_async(self, inputs: list[Any], entries: list[_Entry]) -> list[InferenceAnswer]:
        runtime = self.runtime
        try:
            values = await runtime.call_batch_async(inputs)
        except (Exception, SystemExit) as exc:
            failure = InferenceAnswer.failure(reason_of(exc))
            return [failure] * len(entries)
        if not any(entry.request.return_pickled for entry in entries):
            return [_answer(runtime, entry, value) for entry, value in zip(entries, values, strict=True)]
        # Pickling and storing block: off the loop, in one go.
        return await _in_default_executor(
            lambda: [_answer(runtime, entry, value) for entry, value in zip(entries, values, strict=True)]
        )


def _answer(runtime: BundleRuntime, entry: _Entry, value: Any) -> InferenceAnswer:
    """One result as its request's answer; a request whose caller left gets nothing stored."""
    if entry.gone:
        return InferenceAnswer.failure("the request left its batch")
    try:
        return runtime.answer_value(value, entry.request.return_pickled)
    except (Exception, SystemExit) as exc:
        return InferenceAnswer.failure(reason_of(exc))


def _left(until: float | None, loop: asyncio.AbstractEventLoop) -> float | None:
    return None if until is None else max(0.0, until - loop.time())


def _in_default_executor(fn: Callable[[], list[InferenceAnswer]]) -> Awaitable[list[InferenceAnswer]]:
    return asyncio.get_running_loop().run_in_executor(None, fn)
