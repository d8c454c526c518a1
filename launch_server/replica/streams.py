"""One request's answers as a stream: an async iterator of `InferenceAnswer`s, one per value the
predict function yields (JSON text, via BundleRuntime.answer_value), where a raise becomes one
FAILURE answer with its traceback and then the end. A function that returns rather than yields
answers its one value as a one-answer stream.

Pull-based: the generator is advanced only while fewer than READ_AHEAD of its answers (and less
than READ_AHEAD_BYTES of their text) wait to be taken (Credits), so a slow consumer (gRPC flow
control behind it) holds the user's generator still instead of letting answers pile up in memory.
The read-ahead lets the next values be computed while earlier ones are being sent, and lets a
sender that lags take several at once (take_ready).

The stream lives on the replica loop (replica_loop.py), where one producer task fills it. A sync
generator runs on the predict pool: each pool call (a StoppableCall, stoppable.py) advances it
while credits last, for at most SLICE_S, and hands values to the loop as they are made, with one
wake-up of the loop for all the loop has not seen yet; so a fast generator costs one hop between
threads per several values rather than per value, and streams sharing the pool still take turns
between values. An async generator runs in the producer task itself, so its code always runs in
one task. When the consumer stops early (aclose, or cancellation while it waits for an answer)
the generator is closed at once: a run in progress is given up (its CallStopped unwinds the
generator, running its `finally`), otherwise a sync generator is closed on the predict pool and
an async one with aclose() on the loop. `timeout_s` bounds the whole stream, its clock starting
when the user's code first starts running, as run_stoppable's does."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any, Protocol

from launch_server.domain.requests import InferenceAnswer, InferenceRequest
from launch_server.replica.bundle_runtime import BundleRuntime
from launch_server.replica.failures import failed, reason_of
from launch_server.replica.stoppable import StoppableCall

# How many answers a generator may run ahead of its reader. It bounds a stream's memory on the
# replica and how many values one message can carry (listener.py).
READ_AHEAD = 32
READ_AHEAD_BYTES = 1 << 20  # ... and at most about this much of their text (plus one value)
# How long one pool call may go on advancing a sync generator. The pool is the replica's one
# thread for blocking user code (one call at a time), shared by every request: a stream that
# keeps it longer would hold up the others (other streams, sync requests) between its values.
SLICE_S = 0.002

logger = logging.getLogger("ray.serve")
_END = None  # what the producer puts last
Put = Callable[[InferenceAnswer], None]
Started = Callable[[], None] | None


def stream_timeout_message(timeout_s: float) -> str:
    return f"the stream did not finish within its time limit of {timeout_s:g} s"


class Credits:
    """Whether the producer may make another answer: while fewer than `values` answers, and fewer
    than `max_bytes` of their text, wait to be taken. The producer (on the loop or a pool thread,
    one run at a time) counts what it made, the reader (on the loop) what it took; each counter
    has one writer, so plain ints are safe under the GIL without a lock, which matters: a lock
    held by a pool thread when its call is given up (CallStopped) would never be freed."""

    def __init__(self, values: int, max_bytes: int) -> None:
        self._values = max(1, values)
        self._bytes = max(1, max_bytes)
        self.made = self.made_bytes = 0
        self.taken = self.taken_bytes = 0
        self._waiter: asyncio.Future[None] | None = None

    def may_make(self) -> bool:
        return self.made - self.taken < self._values and self.made_bytes - self.taken_bytes < self._bytes

    def made_one(self, answer: InferenceAnswer) -> None:
        self.made += 1
        self.made_bytes += answer_size(answer)

    def taken_one(self, answer: InferenceAnswer) -> None:
        self.taken += 1
        self.taken_bytes += answer_size(answer)
        self._waiter = _wake(self._waiter)

    async def available(self) -> None:
        while not self.may_make():
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter


def _wake(waiter: asyncio.Future[None] | None) -> None:
    """Wakes whoever waits on `waiter` (the reader, or the producer waiting for credits); the
    caller drops its reference (None), so a waiter is woken at most once."""
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


def answer_size(answer: InferenceAnswer) -> int:
    """About how many bytes an answer takes in a message (its text; what counts against budgets)."""
    return len(answer.result) + len(answer.traceback)


class Source(Protocol):
    """The user side of one stream. fill() makes answers while `credits` last and hands each to
    `put` (on the loop) as it is made, and says whether more may come:
    False once it put the last answer (the end, or the failure that ends the stream). It calls
    `started` once the user's code has begun running (the stream's clock starts then; None: the
    stream has no clock, nothing to wait for). close()
    ends the user's generator; it is called once, last."""

    async def fill(self, credits: Credits, put: Put, started: Started) -> bool: ...

    async def close(self) -> None: ...


class AnswerStream:
    """Iterate on the loop it was made for; always aclose() it (or cancel its reader) when done
    early, which closes the user's generator."""

    def __init__(self, source: Source, timeout_s: float | None = None, read_ahead: int = READ_AHEAD) -> None:
        self._source = source
        self._timeout_s = timeout_s or None
        self._ready: deque[InferenceAnswer | None] = deque()  # made, not yet taken; None last
        self._waiter: asyncio.Future[None] | None = None  # the reader, waiting for an answer
        self._credits = Credits(read_ahead, READ_AHEAD_BYTES)
        self._producer: asyncio.Task[None] | None = None
        self._clock: asyncio.Timeout | None = None
        self._ended = False
        self._closed = False
        self._finishing = False  # the producer is past its last fill, closing the source

    def __aiter__(self) -> AnswerStream:
        return self

    async def __anext__(self) -> InferenceAnswer:
        if self._ended or self._closed:
            raise StopAsyncIteration
        if self._producer is None:
            self._producer = asyncio.ensure_future(self._produce())
        if not self._ready:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            except asyncio.CancelledError:
                await self.aclose()
                raise
        answer = self._ready.popleft()
        if answer is _END:
            self._ended = True
            raise StopAsyncIteration
        self._credits.taken_one(answer)
        return answer

    def take_ready(self, limit: int, max_bytes: int) -> list[InferenceAnswer]:
        """Up to `limit` further answers that are already made, of at most `max_bytes` of text
        in all, without waiting for any (the end, if it is next, is left for __anext__)."""
        taken: list[InferenceAnswer] = []
        ready = self._ready
        size = 0
        while len(taken) < limit and ready and ready[0] is not _END:
            answer = ready[0]
            assert answer is not None
            size += answer_size(answer)
            if size > max_bytes:
                break
            ready.popleft()
            self._credits.taken_one(answer)
            taken.append(answer)
        return taken

    def _put(self, answer: InferenceAnswer | None) -> None:
        """On the loop: one more answer (None: the end) for the reader."""
        self._ready.append(answer)
        self._waiter = _wake(self._waiter)

    async def aclose(self) -> None:
        """Stops the producer and closes the user's generator (waits for that, not for a run
        given up inside a long call into C: that one ends when the call returns)."""
        if self._closed:
            return
        self._closed = True
        if self._producer is None:
            await self._source.close()
            return
        if not self._finishing:  # a source already closing is let finish, not interrupted
            self._producer.cancel()
        await asyncio.wait({self._producer})

    def _start_clock(self) -> None:
        clock = self._clock
        if clock is not None and clock.when() is None:
            clock.reschedule(asyncio.get_running_loop().time() + self._timeout_s)  # type: ignore[operator]

    async def _produce(self) -> None:
        put = self._put
        started = self._start_clock if self._timeout_s else None
        try:
            async with asyncio.timeout(None) as clock:
                if self._timeout_s:
                    self._clock = clock
                while True:
                    await self._credits.available()
                    if not await self._source.fill(self._credits, put, started):
                        break
        except TimeoutError:
            put(failed(stream_timeout_message(self._timeout_s or 0)))
        except Exception as exc:  # noqa: BLE001 - fills answer user errors; this is the replica's own
            logger.exception("Launch replica: a stream failed")
            put(InferenceAnswer.failure(f"the replica failed: {exc!r}"))
        finally:
            self._finishing = True
            try:
                await self._source.close()
            except Exception:  # noqa: BLE001 - the stream is over; the user's cleanup failing changes nothing
                logger.warning("Launch replica: closing a stream's generator failed", exc_info=True)
            put(_END)


def _failure(exc: BaseException) -> InferenceAnswer:
    return InferenceAnswer.failure(reason_of(exc))


class SyncSource:
    """A blocking predict function's stream: its call and its generator's `next()`s on the
    predict pool. What it returns decides the rest: a generator is run, a coroutine or async
    generator goes on as an AsyncSource on the loop, any other value is the one answer."""

    def __init__(self, runtime: BundleRuntime, executor: Executor, request: InferenceRequest) -> None:
        self._runtime = runtime
        self._executor = executor
        self._request = request
        self._opened = False
        self._gen: Any = None
        self._done = False
        self._handed: AsyncSource | None = None
        self._running: StoppableCall[Any] | None = None  # a run given up while it ran

    async def fill(self, credits: Credits, put: Put, started: Started) -> bool:
        if self._handed is not None:
            return await self._handed.fill(credits, put, started)
        if self._done:
            return False
        loop = asyncio.get_running_loop()
        made: deque[InferenceAnswer] = deque()  # put by the pool thread, not yet seen by the loop
        woken = False  # a hand-over to the loop is scheduled and has not started

        def hand_over() -> None:
            nonlocal woken
            woken = False  # first, so a value appended from now on schedules another hand-over
            while made:
                put(made.popleft())

        def put_from_pool(answer: InferenceAnswer) -> None:
            # One wake-up of the loop for however many values it has not seen yet, not one per
            # value: nothing waits, but values made while the loop is busy go over together. In
            # order with the call's own completion (both go through call_soon_threadsafe), so the
            # end the producer puts after this fill never overtakes a value.
            nonlocal woken
            made.append(answer)
            if not woken:
                woken = True
                loop.call_soon_threadsafe(hand_over)

        call = StoppableCall(self._executor, self._run, (credits, put_from_pool))
        try:
            if started is not None:  # the clock starts with the user's code, not in the pool's queue
                await call.wait_started()
                started()
            outcome = await asyncio.shield(call.future)
        except asyncio.CancelledError:
            call.give_up()
            self._running = call
            raise
        if isinstance(outcome, _HandOff):
            self._handed = AsyncSource(self._runtime, self._request, outcome.value)
            return await self._handed.fill(credits, put, started)
        return not self._done

    def _run(self, sink: tuple[Credits, Put]) -> _HandOff | None:
        """On a predict-pool thread: the call itself first, then one `next()` per credit, each
        answer put as it is made; returns once credits run out, the stream ended or SLICE_S
        passed (then the next run queues behind whatever else waits for the pool)."""
        credits, put = sink
        ends = time.monotonic() + SLICE_S
        while credits.may_make():
            answer = self._advance()
            if answer is None or isinstance(answer, _HandOff):
                return answer
            credits.made_one(answer)
            put(answer)
            if self._done or time.monotonic() >= ends:
                return None
        return None

    def _advance(self) -> InferenceAnswer | _HandOff | None:
        try:
            if not self._opened:
                self._opened = True
                args, kwargs = self._runtime.arguments(self._request)
                value = self._runtime.predict_fn(*args, **kwargs)
                if inspect.isawaitable(value) or inspect.isasyncgen(value):
                    self._done = True
                    return _HandOff(value)
                if not inspect.isgenerator(value):
                    self._done = True
                    return self._runtime.answer_value(value, False)
                self._gen = value
            try:
                item = next(self._gen)
            except StopIteration:
                self._done = True
                return None
            return self._runtime.answer_value(item, False)
        except (Exception, SystemExit) as exc:
            self._done = True
            return _failure(exc)

    async def close(self) -> None:
        if self._handed is not None:
            await self._handed.close()
            return
        gen = self._gen
        running, self._running = self._running, None
        if running is not None:
            # Given up mid-run: its CallStopped unwinds the generator when the thread runs Python
            # again; should the run have finished just then, close it after (never concurrently).
            running.future.add_done_callback(lambda _: self._close_later())
            return
        if gen is None:
            return
        self._gen = None
        await asyncio.shield(asyncio.get_running_loop().run_in_executor(self._executor, _close_quietly, gen))

    def _close_later(self) -> None:
        gen, self._gen = self._gen, None
        if gen is not None:
            asyncio.get_running_loop().run_in_executor(self._executor, _close_quietly, gen)


class _HandOff:
    """A plain function returned a coroutine or async generator: it goes on on the replica loop."""

    def __init__(self, value: Any) -> None:
        self.value = value


def _close_quietly(gen: Any) -> None:
    try:
        gen.close()
    except Exception:  # noqa: BLE001 - a generator whose cleanup raises: the stream is over anyway
        logger.warning("Launch replica: a stream's generator raised while closing", exc_info=True)


class AsyncSource:
    """An async predict function's stream, on the replica loop: an async generator's values, or
    a coroutine's one value. `opened` is what a plain function already returned (SyncSource)."""

    def __init__(self, runtime: BundleRuntime, request: InferenceRequest, opened: Any = None) -> None:
        self._runtime = runtime
        self._request = request
        self._value: Any = opened
        self._opened = opened is not None
        self._done = False

    async def fill(self, credits: Credits, put: Put, started: Started) -> bool:
        while not self._done and credits.may_make():
            answer = await self._step(started)
            if answer is not None:
                credits.made_one(answer)
                put(answer)
        return not self._done

    async def _step(self, started: Started) -> InferenceAnswer | None:
        if started is not None:
            started()
        try:
            if not self._opened:
                self._opened = True
                if self._request.url:
                    loop = asyncio.get_running_loop()
                    args, kwargs = await loop.run_in_executor(None, self._runtime.arguments, self._request)
                else:
                    args, kwargs = self._runtime.arguments(self._request)
                self._value = self._runtime.predict_fn(*args, **kwargs)
            value = self._value
            if inspect.isasyncgen(value):
                try:
                    item = await value.__anext__()
                except StopAsyncIteration:
                    self._done = True
                    return None
                return self._runtime.answer_value(item, False)
            self._done = True
            self._value = None
            if inspect.isawaitable(value):
                value = await value
            return self._runtime.answer_value(value, False)
        except (Exception, SystemExit) as exc:
            self._done = True
            return _failure(exc)

    async def close(self) -> None:
        value, self._value = self._value, None
        if inspect.isasyncgen(value):
            await value.aclose()
        elif inspect.iscoroutine(value):
            value.close()  # created, never awaited (closed before its step): no warning


class AnswerOnce:
    """A stream of one answer from a unary answering coroutine (for hosts without a runtime)."""

    def __init__(self, answer: Callable[[], Awaitable[InferenceAnswer]]) -> None:
        self._answer = answer
        self._done = False

    async def fill(self, credits: Credits, put: Put, started: Started) -> bool:
        if not self._done:
            self._done = True
            if started is not None:
                started()
            answer = await self._answer()
            credits.made_one(answer)
            put(answer)
        return False

    async def close(self) -> None:
        return None
