"""The dispatcher's end of one ReplicaService.RunTasks call: a channel of tasks to one replica,
open for as long as it is used (replica/task_channel.py is the replica's end).

Many tasks share the call: each is written as one tagged message and its answer is matched by
tag, so a task costs one message each way instead of a call's set-up (proto/launch/v1/replica.proto
says why). What can be known about a task that did not come back is kept apart, because the
dispatcher treats the cases differently:
- NotRun: it was never sent, or the replica refused it (stopping, at its limit, expired token):
  it never ran, so it goes another way (a Serve handle) without counting an attempt;
- the channel broke after it was sent (the replica died, the port closed, the node vanished):
  it may have run, so it is a failed attempt (ChannelBroken, retried with a bound)."""

from __future__ import annotations

import asyncio
import itertools
import logging

import grpc
from launch.v1 import inference_pb2 as ipb
from launch.v1 import replica_pb2 as rpb
from launch.v1 import replica_pb2_grpc as rgrpc

from launch_server.wire.headers import ACCEPTED_HEADER

log = logging.getLogger(__name__)


class NotRun(Exception):
    """The replica did not run the task (never sent, or refused): safe to send it elsewhere."""


class ChannelBroken(Exception):
    """The channel ended while the task was out: it may have run. `code` is the call's status."""

    def __init__(self, message: str, code: grpc.StatusCode | None) -> None:
        super().__init__(message)
        self.code = code


class ReplicaChannel:
    def __init__(self, stub: rgrpc.ReplicaServiceStub, token: str) -> None:
        self.token = token
        self._call = stub.RunTasks(metadata=(("authorization", f"Bearer {token}"),))
        self._tags = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[ipb.InferenceResult]] = {}
        self._writing = asyncio.Lock()  # gRPC allows one write at a time on a call
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        self._cancelling: set[asyncio.Future[None]] = set()  # cancel messages being written
        self.broken: ChannelBroken | None = None

    @property
    def usable(self) -> bool:
        return self.broken is None and not self._closing

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    async def open(self, timeout: float) -> None:
        """Waits for the replica's accepted header (it checked the token); NotRun if it refused
        or did not answer in time."""
        try:
            metadata = await asyncio.wait_for(self._call.initial_metadata(), timeout)
        except (TimeoutError, grpc.RpcError) as exc:
            self._call.cancel()
            raise NotRun(_reason(exc)) from None
        if not any(key == ACCEPTED_HEADER for key, _ in metadata or ()):
            self._call.cancel()
            raise NotRun(await _status_text(self._call))
        self._reader = asyncio.ensure_future(self._read())

    async def run(self, request: ipb.RequestInput, timeout_s: float = 0.0) -> ipb.InferenceResult:
        """The task's result; NotRun or ChannelBroken when it did not come back (see above). The
        replica gives the task up after `timeout_s` of running (0: never). Cancelling the caller
        once the task is sent tells the replica to stop it (a cancel message for its tag)."""
        if not self.usable:
            raise NotRun("the channel is closed")
        tag = next(self._tags)
        answer: asyncio.Future[ipb.InferenceResult] = asyncio.get_running_loop().create_future()
        self._waiting[tag] = answer
        try:
            async with self._writing:
                await self._call.write(rpb.RunTasksRequest(tag=tag, input=request, timeout_seconds=timeout_s))
        except (Exception, asyncio.CancelledError) as exc:  # a write that failed delivered nothing
            self._waiting.pop(tag, None)
            if isinstance(exc, asyncio.CancelledError) and _being_cancelled():
                raise  # our caller is being cancelled (the server is stopping), not the call
            raise NotRun(f"the channel could not take it ({_reason(exc)})") from None
        try:
            return await answer
        except asyncio.CancelledError:
            # Our caller gave up (the task was cancelled, or the server is stopping): the replica
            # is told to stop it, its answer, if it comes, is dropped, and close() does not wait.
            if self._waiting.pop(tag, None) is not None and self.broken is None:
                sending = asyncio.ensure_future(self._send_cancel(tag))
                self._cancelling.add(sending)
                sending.add_done_callback(self._cancelling.discard)
            raise

    async def _send_cancel(self, tag: int) -> None:
        try:
            async with self._writing:
                await self._call.write(rpb.RunTasksRequest(tag=tag, cancel=True))
        except (Exception, asyncio.CancelledError):  # noqa: BLE001 - the channel ended: the call is gone with it
            pass

    async def close(self) -> None:
        """Ends the channel once its tasks are answered (the replica then ends its side)."""
        self._closing = True
        while self._waiting and self.broken is None:
            await asyncio.wait(list(self._waiting.values()))
        if self.broken is None:
            try:
                async with self._writing:
                    await self._call.done_writing()
            except Exception:  # noqa: BLE001 - already ended
                pass
        if self._reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader), 5.0)
            except TimeoutError:
                self._call.cancel()

    def cancel(self) -> None:
        """Ends it now (server stopping): tasks still out are left to their leases."""
        self._closing = True
        self._call.cancel()

    async def _read(self) -> None:
        error: BaseException | None = None
        try:
            async for response in self._call:
                answer = self._waiting.pop(response.tag, None)
                if answer is None or answer.done():
                    continue
                if response.refused:
                    answer.set_exception(NotRun(f"the replica refused it: {response.refused}"))
                else:
                    answer.set_result(response.result)
        except BaseException as exc:  # noqa: BLE001 - every waiting task learns how it ended
            error = exc
        code = error.code() if isinstance(error, grpc.aio.AioRpcError) else None
        self.broken = ChannelBroken(f"the task channel ended ({_reason(error)})", code)
        for answer in self._waiting.values():
            if not answer.done():
                answer.set_exception(self.broken)
        self._waiting.clear()
        if isinstance(error, asyncio.CancelledError):
            raise error


def _being_cancelled() -> bool:
    """Is the running task itself being cancelled (rather than gRPC reporting a cancelled call)?"""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "closed by the replica"
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}"


async def _status_text(call: grpc.aio.StreamStreamCall) -> str:
    try:
        code = await asyncio.wait_for(call.code(), 1.0)
        return f"{code.name}: {await call.details()}"
    except (TimeoutError, grpc.RpcError):
        return "no accepted header"
