"""One request's answers as a stream: an async iterator of `InferenceAnswer`s, one per value the
predict function yields (JSON text, via BundleRuntime.answer_value), where a raise becomes one
FAILURE answer with its traceback and then the end. A function that returns rather than yields
answers its one value as a one-answer stream.

Pull-based: the generator is advanced only while fewer than READ_AHEAD of its answers wait to be
taken, so a slow consumer (gRPC flow control behind it) holds the user's generator still instead
of letting answers pile up in memory. A small read-ahead lets the next value be computed while the
previous one is being sent.

The stream lives on the replica loop (replica_loop.py), where one producer task advances the
user's generator: a sync generator by one `next()` per step on the predict pool, each step a
StoppableCall (stoppable.py); an async generator in the producer task itself, so its code always
runs in one task. When the consumer stops early (aclose, or cancellation while it waits for an
answer) the generator is closed at once: a step in progress is given up (its CallStopped unwinds
the generator, running its `finally`), otherwise a sync generator is closed on the predict pool
and an async one with aclose() on the loop. `timeout_s` bounds the whole stream, its clock
starting when the first step starts running, as run_stoppable's does."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any, Protocol

from launch_server.domain.requests import InferenceAnswer, InferenceRequest
from launch_server.replica.bundle_runtime import BundleRuntime
from launch_server.replica.failures import reason_of
from launch_server.replica.stoppable import StoppableCall

READ_AHEAD = 2


def stream_timeout_message(timeout_s: float) -> str:
    return f"the stream did not finish within its time limit of {timeout_s:g} s"


logger = logging.getLogger("ray.serve")
_END = None  # what the producer puts last


class Source(Protocol):
    """The user side of one stream. step() answers the next value (or the failure that ends the
    stream), None at the end; it calls `started` once its code has begun running (the stream's
    clock starts then). close() ends the user's generator; it is called once, last."""

    async def step(self, started: Callable[[], None]) -> InferenceAnswer | None: ...

    async def close(self) -> None: ...


class AnswerStream:
    """Iterate on the loop it was made for; always aclose() it (or cancel its reader) when done
    early, which closes the user's generator."""

    def __init__(self, source: Source, timeout_s: float | None = None, read_ahead: int = READ_AHEAD) -> None:
        self._source = source
        self._timeout_s = timeout_s or None
        self._queue: asyncio.Queue[InferenceAnswer | None] = asyncio.Queue()
        self._credits = asyncio.Semaphore(max(1, read_ahead))
        self._producer: asyncio.Task[None] | None = None
        self._clock: asyncio.Timeout | None = None
        self._ended = False
        self._closed = False
        self._finishing = False  # the producer is past its last step, closing the source

    def __aiter__(self) -> AnswerStream:
        return self

    async def __anext__(self) -> InferenceAnswer:
        if self._ended or self._closed:
            raise StopAsyncIteration
        if self._producer is None:
            self._producer = asyncio.ensure_future(self._produce())
        try:
            answer = await self._queue.get()
        except asyncio.CancelledError:
            await self.aclose()
            raise
        if answer is _END:
            self._ended = True
            raise StopAsyncIteration
        self._credits.release()
        return answer

    async def aclose(self) -> None:
        """Stops the producer and closes the user's generator (waits for that, not for a step
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
        queue = self._queue
        try:
            async with asyncio.timeout(None) as clock:
                if self._timeout_s:
                    self._clock = clock
                while True:
                    await self._credits.acquire()
                    answer = await self._source.step(self._start_clock)
                    if answer is None:
                        break
                    queue.put_nowait(answer)
                    if not answer.succeeded:
                        break
        except TimeoutError:
            queue.put_nowait(InferenceAnswer.failure(stream_timeout_message(self._timeout_s or 0)))
        except Exception as exc:  # noqa: BLE001 - steps answer user errors; this is the replica's own
            logger.exception("Launch replica: a stream failed")
            queue.put_nowait(InferenceAnswer.failure(f"the replica failed: {exc!r}"))
        finally:
            self._finishing = True
            try:
                await self._source.close()
            except Exception:  # noqa: BLE001 - the stream is over; the user's cleanup failing changes nothing
                logger.warning("Launch replica: closing a stream's generator failed", exc_info=True)
            queue.put_nowait(_END)


def _failure(exc: BaseException) -> InferenceAnswer:
    return InferenceAnswer.failure(reason_of(exc))


class SyncSource:
    """A blocking predict function's stream: its call and each `next()` on the predict pool. What
    it returns decides the rest: a generator is stepped, a coroutine or async generator goes on
    as an AsyncSource on the loop, any other value is the one answer."""

    def __init__(self, runtime: BundleRuntime, executor: Executor, request: InferenceRequest) -> None:
        self._runtime = runtime
        self._executor = executor
        self._request = request
        self._opened = False
        self._gen: Any = None
        self._done = False
        self._handed: AsyncSource | None = None
        self._stepping: StoppableCall[Any] | None = None  # a step given up while it ran

    async def step(self, started: Callable[[], None]) -> InferenceAnswer | None:
        if self._handed is not None:
            return await self._handed.step(started)
        if self._done:
            return None
        call = StoppableCall(self._executor, self._advance, None)
        try:
            await call.wait_started()
            started()
            outcome = await asyncio.shield(call.future)
        except asyncio.CancelledError:
            call.give_up()
            self._stepping = call
            raise
        if isinstance(outcome, _HandOff):
            self._handed = AsyncSource(self._runtime, self._request, outcome.value)
            return await self._handed.step(started)
        return outcome

    def _advance(self, _: None) -> InferenceAnswer | _HandOff | None:
        """One step, on a predict-pool thread: the call itself first, then one `next()`."""
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
        stepping, self._stepping = self._stepping, None
        if stepping is not None:
            # Given up mid-step: its CallStopped unwinds the generator when the thread runs Python
            # again; should the step have finished just then, close it after (never concurrently).
            stepping.future.add_done_callback(lambda _: self._close_later())
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

    async def step(self, started: Callable[[], None]) -> InferenceAnswer | None:
        if self._done:
            return None
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

    async def step(self, started: Callable[[], None]) -> InferenceAnswer | None:
        if self._done:
            return None
        self._done = True
        started()
        return await self._answer()

    async def close(self) -> None:
        return None
