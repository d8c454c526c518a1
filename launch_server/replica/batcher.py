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
  (pickled and stored, or JSON text), failing only its own request when it cannot be.

The hot path stays short because light traffic must not pay for batching: a request that finds
the function idle runs its batch from its own task (no worker task is made), its deadline and run
limit are one timer on the loop that answers it when they pass, and answers are handed out from
the batch call's own completion callback. A worker task exists only while requests wait."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from launch_server.domain.requests import InferenceAnswer, InferenceRequest
from launch_server.replica.batching import BatchLimits
from launch_server.replica.bundle_runtime import BundleRuntime
from launch_server.replica.failures import answer_or_failure, failed, reason_of
from launch_server.replica.figures_reporter import FIGURES
from launch_server.replica.stoppable import StoppableCall, timeout_message

DEADLINE_MESSAGE = "the request's deadline passed while it waited for a batch"
RAN_PAST_DEADLINE = "the request's deadline passed while its batch ran"
CANCELLED_MESSAGE = "the batch function was cancelled (it raised CancelledError)"
NO_ANSWER_MESSAGE = "the batch ended without an answer for this request"
# Arguments longer than this are parsed off the loop (in its default executor), so one large
# request does not hold up the direct route's gRPC server, which shares the loop.
PARSE_ON_LOOP_MAX = 64 << 10


class _Entry:
    """One request in the batcher: waiting, then in a batch, then answered or gone."""

    __slots__ = ("request", "item", "future", "arrived", "deadline", "timeout_s", "timer", "batch", "left")

    def __init__(
        self, request: InferenceRequest, item: Any, future: asyncio.Future[InferenceAnswer], arrived: float
    ) -> None:
        self.request = request
        self.item = item
        self.future = future
        self.arrived = arrived
        self.deadline: float | None = None  # loop time after which its caller no longer waits
        self.timeout_s: float | None = None  # its run limit, from its batch's start
        self.timer: asyncio.TimerHandle | None = None
        self.batch: _Batch | None = None
        self.left = False

    @property
    def gone(self) -> bool:
        return self.future.done()

    def answer(self, answer: InferenceAnswer) -> None:
        if not self.future.done():
            self.future.set_result(answer)
        self._stop_timer()

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def leave(self, answer: InferenceAnswer | None = None) -> None:
        """Out of the queue or its batch for good (answered `answer`, or cancelled); the batch
        stops when nobody is left in it."""
        if self.left:
            return
        self.left = True
        if answer is not None:
            self.answer(answer)
        else:
            self.future.cancel()  # a no-op when it is done
            self._stop_timer()
        if self.batch is not None:
            self.batch.left()

    def begin(self, batch: _Batch, now: float, loop: asyncio.AbstractEventLoop) -> None:
        """Its batch starts: from here its deadline and its run limit count, whichever is first."""
        self.batch = batch
        self._stop_timer()
        timeout_s, deadline = self.timeout_s, self.deadline
        if timeout_s is not None and (deadline is None or now + timeout_s <= deadline):
            self.timer = loop.call_at(now + timeout_s, self.leave, failed(timeout_message(timeout_s)))
        elif deadline is not None:
            self.timer = loop.call_at(deadline, self.leave, failed(RAN_PAST_DEADLINE))


class _Batch:
    """A running batch: how many of its requests still wait for it, and how to give it up."""

    __slots__ = ("live", "stop")

    def __init__(self, size: int) -> None:
        self.live = size
        self.stop: Callable[[], None] = _nothing

    def left(self) -> None:
        self.live -= 1
        if self.live == 0:
            self.stop()


def _nothing() -> None:
    return None


class Batcher:
    """Batches for one replica's batch function; lives on the replica loop."""

    def __init__(self, runtime: BundleRuntime, executor: Executor, limits: BatchLimits) -> None:
        self.runtime = runtime
        self.limits = limits
        self._executor = executor
        self._queue: deque[_Entry] = deque()
        self._busy = False  # a batch runs, or a worker task gathers the next one
        self._arrival: asyncio.Event | None = None  # set on each arrival while a batch gathers

    async def answer(
        self, request: InferenceRequest, timeout_s: float | None = None, patience_s: float | None = None
    ) -> InferenceAnswer:
        """One request's answer from its batch; never raises for user errors. `timeout_s`: the
        run limit from its batch's start (None or 0: none); `patience_s`: how long its caller
        waits from now (None: no deadline)."""
        loop = asyncio.get_running_loop()
        entry = await self._entry(request, timeout_s, patience_s, loop)
        if isinstance(entry, InferenceAnswer):
            return entry
        if not self._busy and not self.limits.max_wait_ms:
            # Idle, and no wait asked for: this request's batch starts now, from this task.
            self._busy = True
            self._start([entry], loop).add_done_callback(self._after_inline)
        else:
            self._enqueue(entry, loop)
            self._wake(loop)
        try:
            return await entry.future
        except asyncio.CancelledError:
            entry.leave()
            raise

    async def answer_many(
        self, requests: list[InferenceRequest], timeout_s: float | None = None
    ) -> list[InferenceAnswer]:
        """Answers in request order. The requests join the queue together, so a group (a
        dispatcher's async tasks) goes in as one batch where it fits."""
        loop = asyncio.get_running_loop()
        made = await asyncio.gather(*(self._entry(r, timeout_s, None, loop) for r in requests))
        entries = [e for e in made if isinstance(e, _Entry)]
        for entry in entries:
            self._enqueue(entry, loop)
        if entries:
            self._wake(loop)
        try:
            return [e if isinstance(e, InferenceAnswer) else await e.future for e in made]
        except asyncio.CancelledError:
            for entry in entries:
                entry.leave()
            raise

    async def _entry(
        self,
        request: InferenceRequest,
        timeout_s: float | None,
        patience_s: float | None,
        loop: asyncio.AbstractEventLoop,
    ) -> _Entry | InferenceAnswer:
        """The request with its input decoded, or its FAILURE answer when that cannot be."""
        arrived = loop.time()
        try:
            item = await self._decode(request)
        except (Exception, SystemExit) as exc:
            return InferenceAnswer.failure(reason_of(exc))
        entry = _Entry(request, item, loop.create_future(), arrived)
        if timeout_s:
            entry.timeout_s = timeout_s
        if patience_s is not None:
            entry.deadline = arrived + max(0.0, patience_s)
        return entry

    def _enqueue(self, entry: _Entry, loop: asyncio.AbstractEventLoop) -> None:
        if entry.deadline is not None:
            entry.timer = loop.call_at(entry.deadline, entry.leave, failed(DEADLINE_MESSAGE))
        self._queue.append(entry)

    async def _decode(self, request: InferenceRequest) -> Any:
        """The batch function's input for the request. Reading a url, or parsing long arguments,
        happens off the loop, in its default executor (not the predict pool, which runs batches)."""
        if isinstance(request, InferenceRequest) and (request.url or len(request.args_json) > PARSE_ON_LOOP_MAX):
            return await asyncio.get_running_loop().run_in_executor(None, self.runtime.batch_input, request)
        return self.runtime.batch_input(request)

    def _wake(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._busy:
            self._busy = True
            loop.create_task(self._work())
        elif self._arrival is not None:
            self._arrival.set()

    def _after_inline(self, _: asyncio.Future[None]) -> None:
        """A batch run from its request's own task ended: a worker takes whoever waits."""
        self._busy = False
        if self._head(1):
            self._wake(asyncio.get_running_loop())

    # ----- the worker: one batch at a time while requests wait -----

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while batch := await self._gather(loop):
                await self._start(batch, loop)
        finally:
            # No await between the empty queue seen in _gather and here: nobody is left waiting.
            self._busy = False

    def _head(self, limit: int) -> list[_Entry]:
        """Up to `limit` waiting requests, oldest first (those gone are dropped from the front)."""
        queue = self._queue
        while queue and queue[0].gone:
            queue.popleft()
        head: list[_Entry] = []
        for entry in queue:
            if not entry.gone:
                head.append(entry)
                if len(head) == limit:
                    break
        return head

    async def _gather(self, loop: asyncio.AbstractEventLoop) -> list[_Entry]:
        limits = self.limits
        if limits.max_wait_ms and 0 < len(self._head(limits.max_batch_size)) < limits.max_batch_size:
            await self._wait_for_more(limits, loop)
        batch: list[_Entry] = []
        queue = self._queue
        while queue and len(batch) < limits.max_batch_size:
            entry = queue.popleft()
            if not entry.gone:
                batch.append(entry)
        return batch

    async def _wait_for_more(self, limits: BatchLimits, loop: asyncio.AbstractEventLoop) -> None:
        """Until the batch is full, max_wait_ms after its oldest request, or half the most urgent
        one's time is spent."""
        arrival = self._arrival = asyncio.Event()
        try:
            while True:
                head = self._head(limits.max_batch_size)
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

    def _start(self, entries: list[_Entry], loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        """Starts one batch; the future it returns is done once every request of it is answered
        (or gone) and the function is free again."""
        batch = _Batch(len(entries))
        now = loop.time()
        for entry in entries:
            entry.begin(batch, now, loop)
        FIGURES.observe("batch_size", len(entries))
        FIGURES.observe_many("queue_wait", [now - entry.arrived for entry in entries])
        finished: asyncio.Future[None] = loop.create_future()
        inputs = [entry.item for entry in entries]
        done: asyncio.Future[Any]
        if self.runtime.kind.on_loop:
            done = loop.create_task(self._answers_async(inputs, entries))
            batch.stop = done.cancel
        else:
            call = StoppableCall(self._executor, self._answers_sync, (inputs, entries))
            done, batch.stop = call.future, call.give_up
        done.add_done_callback(lambda settled: _hand_out(entries, batch, settled, finished))
        return finished

    def _answers_sync(self, work: tuple[list[Any], list[_Entry]]) -> list[InferenceAnswer]:
        """In a predict-pool thread: the batch, then each result as its request asks."""
        inputs, entries = work
        runtime = self.runtime
        try:
            values = runtime.call_batch(inputs)
        except (Exception, SystemExit, asyncio.CancelledError) as exc:
            return [InferenceAnswer.failure(reason_of(exc))] * len(entries)
        return _answers(runtime, entries, values)

    async def _answers_async(self, inputs: list[Any], entries: list[_Entry]) -> list[InferenceAnswer]:
        runtime = self.runtime
        try:
            values = await runtime.call_batch_async(inputs)
        except (Exception, SystemExit) as exc:
            return [InferenceAnswer.failure(reason_of(exc))] * len(entries)
        if not any(entry.request.return_pickled for entry in entries):
            return _answers(runtime, entries, values)
        # Pickling and storing block: off the loop, in one go.
        return await asyncio.get_running_loop().run_in_executor(None, _answers, runtime, entries, values)


def _hand_out(
    entries: list[_Entry], batch: _Batch, settled: asyncio.Future[Any], finished: asyncio.Future[None]
) -> None:
    """Each request's answer once its batch's call settled; every request still waiting gets
    one, whatever happened to the call."""
    try:
        if settled.cancelled():
            # Ours (everyone left) needs no answer; a CancelledError from the user's code does.
            answers = None if batch.live <= 0 else [InferenceAnswer.failure(CANCELLED_MESSAGE)] * len(entries)
        elif (exc := settled.exception()) is not None:
            answers = [InferenceAnswer.failure(f"the replica failed: {exc!r}")] * len(entries)
        else:
            answers = settled.result()  # None: given up, nobody waits
        if answers is not None:
            for entry, answer in zip(entries, answers, strict=True):
                entry.answer(answer)
    finally:
        for entry in entries:
            if not entry.gone:
                entry.answer(InferenceAnswer.failure(NO_ANSWER_MESSAGE))
        finished.set_result(None)


def _answers(runtime: BundleRuntime, entries: list[_Entry], values: list[Any]) -> list[InferenceAnswer]:
    """Each result as its request asks (failing only that request when it cannot be); a request
    whose caller left gets nothing stored."""
    return [
        InferenceAnswer.failure("the request left its batch")
        if entry.gone
        else answer_or_failure(lambda v, pickled=entry.request.return_pickled: runtime.answer_value(v, pickled), value)
        for entry, value in zip(entries, values, strict=True)
    ]
