"""One async request submitted and watched on a single call (TaskService.CreateAndWatchTask).

Why: submitting and then watching would take two round trips before the result could flow back;
on one call the result follows the stored task on the same stream. The first message arrives only
once the task is durable, so `AsyncEndpoint.predict` still returns a task that is never lost. A
server without the RPC (UNIMPLEMENTED) gets CreateTask instead."""

from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING

import grpc

from launch.v1 import inference_pb2 as ipb
from launch.v1 import task_pb2 as tpb

from .errors import LaunchError

if TYPE_CHECKING:
    from .connection import Connection, ServerStream

TERMINAL = (ipb.RESULT_STATE_SUCCESS, ipb.RESULT_STATE_FAILURE, ipb.RESULT_STATE_CANCELLED)


class TaskStream:
    """The open call of one submitted task: the latest state seen, and more as they come.

    The call stays open until the task finishes or the client's timeout passes, whether or not
    get() is called: a loop of many predict() calls holds that many open streams; predict_batch
    watches many tasks over one."""

    def __init__(self, stream: ServerStream, first: tpb.Task) -> None:
        self._stream = stream
        self._reading = threading.Lock()  # one reader at a time: the call is read on the caller's thread
        self.ended = False
        self.latest = first

    def wait(self, timeout: float | None) -> tpb.Task | None:
        """The task once finished; None when the call ended first, `timeout` passed (the call is
        then cancelled: that stops the watch, never the task), or another thread is reading it.
        `ended` tells the first two apart from the last. Callers then watch through WatchTasks."""
        if self.latest.state in TERMINAL:
            return self.latest
        if self.ended or not self._reading.acquire(blocking=False):
            return None
        timer = threading.Timer(timeout, self._stream.cancel) if timeout is not None else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            for message in self._stream.rest():
                self.latest = message.task
                if self.latest.state in TERMINAL:
                    return self.latest
        except LaunchError:
            pass
        finally:
            if timer is not None:
                timer.cancel()
            self._reading.release()
        self.ended = True
        return None


def _older_server(error: LaunchError) -> bool:
    """UNIMPLEMENTED from gRPC itself (no such method), not from launch-server, whose errors carry
    rich details (a server with serving off also answers UNIMPLEMENTED, for every task call)."""
    return error.code == grpc.StatusCode.UNIMPLEMENTED and not error.has_details


def create_and_watch(connection: Connection, endpoint_name: str, spec: tpb.TaskSpec) -> TaskStream | None:
    """Submits the task and returns its stream once the first (durable) message came; None when the
    server does not offer the call. The connection retries UNAVAILABLE before that message with
    the same request_id, so a retry never queues the task twice (and the server does not start it
    again)."""
    request = tpb.CreateAndWatchTaskRequest(request_id=uuid.uuid4().hex, endpoint_name=endpoint_name, task=spec)
    try:
        # The deadline bounds the whole watch; a task still running when it passes is watched on
        # through WatchTasks by EndpointResponseFuture.get().
        stream = connection.open_stream(connection.tasks.CreateAndWatchTask, request, timeout=connection.timeout)
    except LaunchError as exc:
        if _older_server(exc):
            return None
        raise
    if stream.first is None:
        raise LaunchError("the server ended CreateAndWatchTask without the task")
    return TaskStream(stream, stream.first.task)
