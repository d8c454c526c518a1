"""The Ray Serve replica class for one endpoint.

`LaunchReplica` is a plain class: the reconciler wraps it with
`serve.deployment(LaunchReplica).options(...)` and binds `(descriptor_dict, config_dict)`, so this
module imports neither ray nor serve and can be unit-tested without a cluster.

Blocking user code may be slow; with throughput-optimized Serve the replica's methods run on its
event loop, so every blocking predict runs in our own thread pool instead. The pool defaults to one
thread: a user's predict function is not known to be thread-safe (models on a GPU rarely are), and
Serve's own default also runs sync user code one call at a time. Concurrency beyond that comes
from more replicas, which is what the autoscaler is for. Async user code (`async def`, async
generators) runs on the replica loop instead (replica_loop.py), one loop per replica that the
direct route's listener shares; calls.py says which request goes where."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from launch_server.domain.requests import (
    AssembleRequest,
    ChunkRequest,
    InferenceAnswer,
    InferenceRequest,
)
from launch_server.replica.autoscaling import DIRECT_ONGOING_METRIC
from launch_server.replica.batch_chunks import BatchChunkWork, SliceCall
from launch_server.replica.bundle_runtime import (
    BundleDescriptor,
    BundleLoadError,
    BundleRuntime,
    RuntimeConfig,
    current_python_version,
)
from launch_server.replica.calls import ReplicaCalls
from launch_server.replica.figures_reporter import FIGURES, report_until_stopped
from launch_server.replica.log_capture import CAPTURE
from launch_server.replica.logs_reporter import LogsReporter
from launch_server.replica.replica_loop import ReplicaLoop
from launch_server.replica.stoppable import run_stoppable

# Serve routes the "ray.serve" logger of a replica into that replica's own log file, which is
# where an operator (and read_endpoint_creation_logs) looks for start-up problems.
logger = logging.getLogger("ray.serve")


def _flush_log() -> None:
    """Throughput-optimized Serve buffers up to 1,000 log records per replica before writing the
    file, so without a flush the start-up lines would not be readable until much later (or ever,
    if the replica dies first)."""
    for handler in logger.handlers:
        handler.flush()


class LaunchReplica:
    """Loads one bundle at start-up and answers requests with it. The server calls these methods
    through Serve handles: `__call__` (one request), `predict_stream` (one request's answers as a
    stream), `predict_many` (a group of async tasks), `run_chunk` (a batch job's chunk) and
    `assemble` (a batch job's results object)."""

    def __init__(
        self,
        descriptor: dict[str, Any],
        config: dict[str, Any],
        max_threads: int = 1,
        direct: dict[str, Any] | None = None,
    ) -> None:
        bundle = BundleDescriptor.from_dict(descriptor)
        self.descriptor = bundle
        logger.info(
            "Launch replica starting: bundle %r (id %s, %s), Python %s",
            bundle.name,
            bundle.bundle_id,
            bundle.packaging_type,
            current_python_version(),
        )
        started = time.monotonic()
        runtime_config = RuntimeConfig.from_dict(config)
        FIGURES.enabled = runtime_config.figures
        self._identity = _replica_identity()
        # What the user's code prints from here on, loading included, is its owner's to read.
        self._logs = LogsReporter(*self._identity) if self._identity is not None else None
        if self._logs is not None:
            CAPTURE.install()
        # Started even without the direct route: async user code and streams run on it.
        self._loop = ReplicaLoop().start()
        self._logs_stop = asyncio.Event()
        self._logs_running = (
            self._loop.submit(self._logs.run_until_stopped(self._logs_stop)) if self._logs is not None else None
        )
        try:
            self.runtime = BundleRuntime(bundle, runtime_config, loop=self._loop)
        except BundleLoadError as exc:
            logger.error("Launch replica cannot load bundle %r (id %s): %s", bundle.name, bundle.bundle_id, exc)
            CAPTURE.add("traceback", f"the bundle failed to load: {exc}")
            _flush_log()
            self._stop_logs()
            self._loop.stop()
            raise
        except BaseException:
            self._stop_logs()
            self._loop.stop()
            raise
        loaded_s = time.monotonic() - started
        FIGURES.cold_start_phase("bundle_download", self.runtime.download_s)
        FIGURES.cold_start_phase("load", loaded_s - self.runtime.download_s)
        logger.info("Launch replica ready: bundle %r (id %s) loaded in %.2f s", bundle.name, bundle.bundle_id, loaded_s)
        # Requests through Serve are async tasks on an async endpoint, sync predicts otherwise.
        self._call_kind = "sync" if runtime_config.sync_results else "async_task"
        self._batch = BatchChunkWork(self.runtime.call, self.runtime.storage, _slices_of(self.runtime))
        self._executor = ThreadPoolExecutor(max_workers=max(1, max_threads), thread_name_prefix="launch-predict")
        self._calls = ReplicaCalls(self.runtime, self._executor, self._loop)
        self._direct = self._start_direct(direct) if direct else None
        self._reporting = self._start_reporting()
        _flush_log()

    def _stop_logs(self) -> None:
        """The log publisher's last write (bounded: a stopping replica must not hang on it)."""
        if self._logs_running is None:
            return
        with contextlib.suppress(Exception):
            self._loop.loop.call_soon_threadsafe(self._logs_stop.set)
            self._logs_running.result(timeout=5.0)

    def _start_reporting(self) -> tuple[Any, asyncio.Event] | None:
        """This replica's figures go to the servers every few seconds (figures_reporter);
        outside Serve (unit tests) there is nowhere to report."""
        if self._identity is None or not FIGURES.enabled:
            return None
        stop = asyncio.Event()
        return self._loop.submit(report_until_stopped(*self._identity, stop)), stop

    def _start_direct(self, direct: dict[str, Any]) -> Any:
        """Serves InferenceService on this replica's own port (see listener). A failure here only
        costs the one-hop route: requests still arrive through Serve."""
        from ray import serve

        from launch_server.replica.listener import DirectConfig, ReplicaListener

        context = serve.get_replica_context()
        try:
            ingress = ReplicaListener(
                DirectConfig.from_dict(direct),
                context.app_name,
                context.replica_tag,
                self.runtime.predict,
                self._executor,
                calls=self._calls,
                loop=self._loop,
            )
            ingress.start()
        except Exception:  # noqa: BLE001 - see docstring
            logger.exception("Launch replica: the direct route is off for this replica")
            return None
        return ingress

    async def __call__(
        self, request: InferenceRequest, timeout_s: float | None = None, patience_s: float | None = None
    ) -> InferenceAnswer:
        """One predict request (see BundleRuntime.predict); never raises for user errors. An async
        task carries its endpoint's task_timeout_seconds: past it the call is given up and answered
        FAILURE; a cancelled call (Serve cancels it when the dispatcher does) is given up too
        (see stoppable). A generator's answer is the list of its values; async code runs on the
        replica loop (calls.py). `patience_s` is how long the caller still waits (the server's
        request deadline), which a batch must not wait out (batcher.py)."""
        outcome, started = "cancelled", FIGURES.started()
        try:
            answer = await self._calls.answer(request, timeout_s, patience_s)
            outcome = _outcome(answer)
            return answer
        finally:
            FIGURES.finished(self._call_kind, "server", outcome, started)

    async def predict_stream(
        self, request: InferenceRequest, timeout_s: float | None = None
    ) -> AsyncIterator[InferenceAnswer]:
        """One request's answers as the predict function yields them (streams.py: JSON text each,
        a raise as one last FAILURE), for `handle.options(stream=True).predict_stream`. The
        stream lives on the replica loop and is read from here a step at a time; when Serve
        closes or cancels this generator (the caller went away), the user's generator is closed.
        `timeout_s` bounds the whole stream."""
        outcome, started = "cancelled", FIGURES.started()
        last: InferenceAnswer | None = None
        try:
            stream = await self._loop.run(_open_stream(self._calls, request, timeout_s))
            async with contextlib.aclosing(self._loop.iterate(stream)) as answers:  # closed at once, however it ends
                async for answer in answers:
                    if last is None:
                        FIGURES.observe("first_chunk", time.perf_counter() - started)
                    last = answer
                    yield answer
            outcome = "success" if last is None else _outcome(last)
        finally:
            FIGURES.finished("stream", "server", outcome, started)

    async def predict_many(
        self, requests: list[InferenceRequest], timeout_s: float | None = None
    ) -> list[InferenceAnswer]:
        """A group of requests in one call, answered in order, so per-call overhead is paid once;
        blocking code runs them one by one (in one go on the pool without a time limit, each on
        its own clock with one), async code side by side on the replica loop."""
        starts = [FIGURES.started() for _ in requests]
        answers: list[InferenceAnswer] = []
        try:
            answers = await self._calls.answer_many(requests, timeout_s)
            return answers
        finally:
            for i, started in enumerate(starts):
                outcome = _outcome(answers[i]) if i < len(answers) else "cancelled"
                FIGURES.finished(self._call_kind, "server", outcome, started)

    async def run_chunk(self, chunk: ChunkRequest, timeout_s: float | None = None) -> InferenceAnswer:
        """A batch job's chunk: its outcomes go to storage and the answer's result summarizes
        them (batch_chunks). The chunk is one task of the job's endpoint, so the whole chunk runs
        on one clock of task_timeout_seconds and is given up like any task. It runs on the pool;
        an async predict function's items run on the replica loop while the pool thread waits
        (BundleRuntime.call)."""
        outcome, started = "cancelled", FIGURES.started()
        try:
            answer = await run_stoppable(self._executor, self._batch.run_chunk, chunk, timeout_s)
            outcome = _outcome(answer)
            return answer
        finally:
            FIGURES.finished("batch_chunk", "server", outcome, started)

    async def assemble(self, request: AssembleRequest) -> InferenceAnswer:
        """Writes a batch job's results object from its chunks' outcomes (batch_chunks); the
        answer's result_url is where it went."""
        return await run_stoppable(self._executor, self._batch.assemble, request, count_wait=False)  # not a request

    def record_autoscaling_stats(self) -> dict[str, float]:
        """Serve's custom-metrics hook: requests in flight on the direct route, which Serve cannot
        see (they never pass its router); autoscaling.direct_aware_policy adds them to its count."""
        direct = self._direct
        return {DIRECT_ONGOING_METRIC: direct.gauge.read_average() if direct is not None else 0.0}

    def check_health(self) -> None:
        """Serve's health probe. Deliberately a no-op: a loaded replica is healthy, and a predict
        function that is busy must not make Serve kill the replica."""

    def __del__(self) -> None:
        direct = getattr(self, "_direct", None)
        if direct is not None:
            direct.stop()  # drains direct requests first (see ReplicaListener.stop)
        reporting = getattr(self, "_reporting", None)
        if reporting is not None:  # one last write, with the drained requests counted
            future, stop = reporting
            with contextlib.suppress(Exception):
                self._loop.loop.call_soon_threadsafe(stop.set)
                future.result(timeout=5.0)
        if getattr(self, "_logs_running", None) is not None:
            self._stop_logs()
        executor = getattr(self, "_executor", None)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        loop = getattr(self, "_loop", None)
        if loop is not None:
            loop.stop()


def _outcome(answer: InferenceAnswer) -> str:
    return "success" if answer.succeeded else "failure"


def _replica_identity() -> tuple[str, str] | None:
    """(application, replica id) inside a Serve replica; None elsewhere."""
    try:
        from ray import serve

        context = serve.get_replica_context()
        return context.app_name, context.replica_tag
    except Exception:  # noqa: BLE001 - not in a replica: no figures to report
        return None


def _slices_of(runtime: BundleRuntime) -> SliceCall | None:
    """A batch function takes a batch job's chunk in slices of its max batch size."""
    limits = runtime.batching
    if limits is None:
        return None
    return SliceCall(runtime.batch_input, runtime.call_batch, limits.max_batch_size)


async def _open_stream(calls: ReplicaCalls, request: InferenceRequest, timeout_s: float | None) -> Any:
    """Makes the stream on the replica loop, where it must live."""
    return calls.stream(request, timeout_s)
