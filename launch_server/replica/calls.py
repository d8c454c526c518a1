"""Where one request's user code runs, by the predict function's kind (call_kinds.py): blocking
code on the replica's predict thread pool, one call at a time per thread and given up at its
deadline or cancellation (stoppable.py); async code on the replica loop (replica_loop.py), never
in the pool, so one replica's `async def` calls overlap on one loop. Every way a request reaches
the replica goes through here: Serve-handle methods (deployment.py), the direct route and the task
channel (listener.py); batch chunks run on the pool and reach async code through
BundleRuntime.call.

A batch function's requests all go through the replica's one Batcher (batcher.py), on the replica
loop, so requests from every path share its batches.

Sync kinds are answered on whichever loop asks (no hop between threads on the hot path); async
kinds and batches hop to the replica loop when asked from another one (Serve's)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Protocol

from launch_server.domain.requests import InferenceAnswer, InferenceRequest
from launch_server.replica.batcher import Batcher
from launch_server.replica.bundle_runtime import BundleRuntime
from launch_server.replica.failures import failed, reason_of
from launch_server.replica.replica_loop import ReplicaLoop
from launch_server.replica.stoppable import run_stoppable, timeout_message
from launch_server.replica.streams import AnswerOnce, AnswerStream, AsyncSource, SyncSource


class Calls(Protocol):
    """What the listener needs to answer requests (ReplicaCalls, or PoolCalls for a host that has
    only a blocking predict function)."""

    async def answer(
        self, request: InferenceRequest, timeout_s: float | None = None, patience_s: float | None = None
    ) -> InferenceAnswer: ...

    def stream(self, request: InferenceRequest, timeout_s: float | None = None) -> AnswerStream: ...


class ReplicaCalls:
    def __init__(self, runtime: BundleRuntime, executor: Executor, loop: ReplicaLoop) -> None:
        self.runtime = runtime
        self.executor = executor
        self.loop = loop
        limits = runtime.batching
        self.batcher = Batcher(runtime, executor, limits) if limits is not None else None

    async def answer(
        self, request: InferenceRequest, timeout_s: float | None = None, patience_s: float | None = None
    ) -> InferenceAnswer:
        """One request's answer (a generator's: the list of its values); never raises for user
        errors. Past `timeout_s` (None or 0: no limit) it is given up and answered FAILURE; a
        cancelled caller gives it up too. `patience_s` (how long the caller still waits, None
        for no deadline) only matters to a batch function: no batch waits it out."""
        if self.batcher is not None:
            return await self.loop.run(self.batcher.answer(request, timeout_s, patience_s))
        if not self.runtime.kind.on_loop:
            return await run_stoppable(self.executor, self.runtime.predict, request, timeout_s)
        return await self.loop.run(self._answer_async(request, timeout_s))

    async def answer_many(
        self, requests: list[InferenceRequest], timeout_s: float | None = None
    ) -> list[InferenceAnswer]:
        """Answers in request order. Blocking code runs them one by one (in one pool call when
        there is no time limit); async code runs them side by side on the replica loop, each on
        its own clock; a batch function gets them in as few batches as fit."""
        if self.batcher is not None:
            return await self.loop.run(self.batcher.answer_many(requests, timeout_s))
        if self.runtime.kind.on_loop:
            return await self.loop.run(self._answer_all(requests, timeout_s))
        if not timeout_s:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.executor, self.runtime.predict_many, requests)
        return [await run_stoppable(self.executor, self.runtime.predict, r, timeout_s) for r in requests]

    def stream(self, request: InferenceRequest, timeout_s: float | None = None) -> AnswerStream:
        """One request's answers as they are yielded (streams.py), to be read on the replica loop
        (from another loop: ReplicaLoop.iterate). Answers are JSON text whatever the request's
        return_pickled says: a stream carries values, not stored objects."""
        if not self.loop.in_loop():
            raise RuntimeError("a stream is made and read on the replica loop")
        if self.batcher is not None:
            batcher = self.batcher
            return AnswerStream(AnswerOnce(lambda: batcher.answer(request, timeout_s)), timeout_s)
        if self.runtime.kind.on_loop:
            return AnswerStream(AsyncSource(self.runtime, request), timeout_s)
        return AnswerStream(SyncSource(self.runtime, self.executor, request), timeout_s)

    async def _answer_all(self, requests: list[InferenceRequest], timeout_s: float | None) -> list[InferenceAnswer]:
        return list(await asyncio.gather(*(self._answer_async(r, timeout_s) for r in requests)))

    async def _answer_async(self, request: InferenceRequest, timeout_s: float | None) -> InferenceAnswer:
        runtime = self.runtime
        clock = asyncio.timeout(timeout_s or None)
        try:
            async with clock:
                value = await runtime.call_async(request)
            if request.return_pickled:  # pickling and storing block: off the loop
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(None, runtime.answer_value, value, True)
            return runtime.answer_value(value, False)
        except (Exception, SystemExit) as exc:
            if isinstance(exc, TimeoutError) and clock.expired():  # ours, not a TimeoutError of the user's
                return failed(timeout_message(timeout_s or 0))
            return InferenceAnswer.failure(reason_of(exc))


class PoolCalls:
    """Calls for a host with only a blocking predict function and a pool (no bundle runtime):
    every request on the pool, a stream as its one answer."""

    def __init__(self, predict: Callable[[InferenceRequest], InferenceAnswer], executor: Executor) -> None:
        self._predict = predict
        self._executor = executor

    async def answer(
        self, request: InferenceRequest, timeout_s: float | None = None, patience_s: float | None = None
    ) -> InferenceAnswer:
        return await run_stoppable(self._executor, self._predict, request, timeout_s)

    def stream(self, request: InferenceRequest, timeout_s: float | None = None) -> AnswerStream:
        return AnswerStream(AnswerOnce(lambda: self.answer(request)), timeout_s)
