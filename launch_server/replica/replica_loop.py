"""The replica's one event loop for async user code, on a thread of its own.

All `async def` predict functions and async generators of one replica run here, whichever way
the request came in (Serve handle, direct route, task channel, batch chunk), so user code that
shares state across requests (a client session, a lock, a batching queue) sees one loop, as the
contract promises. The direct route's gRPC server (listener.py) runs on this loop too, so its
requests reach async user code without a hop between threads; Serve-handle methods, which run on
Serve's own loop, hand their coroutines over with run_coroutine_threadsafe (`run`, `iterate`).

Why not Serve's loop: user code that blocks its loop (a sync call inside an `async def`) would
then stall Serve's own replica machinery (health checks, metrics, routing of other requests),
and Serve may run replica methods on a loop it changes between versions; a loop we own keeps
both questions out. Threads of the predict pool that need an async value (a chunk of a batch
job) wait on this loop with `run_sync`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
logger = logging.getLogger("ray.serve")
# How often a predict-pool thread waiting in run_sync returns to Python code, so a CallStopped
# raised in it (stoppable.py) is delivered and the coroutine it waits on is cancelled.
_POLL_S = 0.02


class ReplicaLoop:
    def __init__(self, name: str = "launch-replica-loop") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ReplicaLoop:
        """Starts the thread (once; later calls return at once)."""
        with self._lock:
            if self._thread is not None:
                return self
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            self._loop = loop
            self._thread = threading.Thread(target=self._run, args=(loop, ready), name=self._name, daemon=True)
            self._thread.start()
        ready.wait()
        return self

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            try:
                tasks = asyncio.all_tasks(loop)
                for task in tasks:
                    task.cancel()
                if tasks:
                    loop.run_until_complete(asyncio.wait(tasks, timeout=2.0))
                loop.run_until_complete(loop.shutdown_asyncgens())
            except Exception:  # noqa: BLE001 - stopping: nothing is left to tell
                logger.debug("Launch replica loop: cleanup failed", exc_info=True)
            loop.close()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the replica loop is not started")
        return self._loop

    def in_loop(self) -> bool:
        """Whether the caller runs on this loop's thread."""
        return self._thread is not None and threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Runs `coro` on the loop; cancelling the future cancels it there."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Awaits `coro` on this loop from any loop (directly when already on it); cancelling the
        caller cancels it here."""
        if self.in_loop():
            return await coro
        return await asyncio.wrap_future(self.submit(coro))

    def run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Blocks a thread that is not the loop's (a predict-pool thread) until `coro` finished on
        the loop. The wait returns to Python code every few milliseconds, so a call given up
        (stoppable.CallStopped) stops waiting and cancels `coro`."""
        if self.in_loop():
            coro.close()
            raise RuntimeError("run_sync on the replica loop itself would wait forever")
        future = self.submit(coro)
        try:
            while not future.done():
                concurrent.futures.wait((future,), timeout=_POLL_S)
            return future.result()
        except BaseException:
            future.cancel()
            raise

    async def iterate(self, stream: AsyncIterator[T]) -> AsyncIterator[T]:
        """`stream` (which lives on this loop) read from another loop: each step runs here, and
        the stream is closed here however the reader stops (end, error, cancellation, aclose)."""
        try:
            while True:
                done, item = await self.run(_step(stream))
                if done:
                    return
                yield item
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await self.run(aclose())

    def stop(self, timeout: float = 5.0) -> None:
        """Cancels what still runs on the loop and ends its thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:  # closed meanwhile
            return
        if threading.current_thread() is not thread:
            thread.join(timeout)


async def _step(stream: AsyncIterator[T]) -> tuple[bool, Any]:
    """One step as a plain value: StopAsyncIteration does not travel well through futures."""
    try:
        return False, await stream.__anext__()
    except StopAsyncIteration:
        return True, None
