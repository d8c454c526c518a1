"""The replica's end of ReplicaService.RunTasks: one long-lived call from launch-server's
dispatcher that carries many requests, each run on the replica's predict thread pool and
answered on the same call as it finishes (proto/launch/v1/replica.proto says the contract).

Why: a Predict call per async task pays call set-up, metadata, a token check and a header frame
on both ends for every task; on an open channel a request is one message each way. The channel is
served by the replica's listener (listener.py), with its token check, load gauge and drain: a
request on it counts in the load the autoscaler sees exactly like a direct Predict, and a
stopping replica keeps answering until it has drained. What the channel needs from its listener
is the ChannelHost protocol below, so neither module imports the other's class."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import grpc
from launch.v1 import inference_pb2 as ipb
from launch.v1 import replica_pb2 as rpb
from launch.v1 import replica_pb2_grpc as rgrpc

from launch_server.domain.errors import InvalidArgument
from launch_server.domain.requests import InferenceRequest
from launch_server.replica.figures_reporter import FIGURES
from launch_server.wire.headers import ACCEPTED_HEADER
from launch_server.wire.limits import MAX_ANSWER_BYTES
from launch_server.wire.messages import request_of

if TYPE_CHECKING:
    from launch_server.replica.inflight import InflightGauge


class ChannelHost(Protocol):
    """The listener a channel runs on (listener.ReplicaListener): its token check, its admission
    rule, the gauge a request is counted in while it runs, and the run itself on the replica's
    predict thread pool."""

    gauge: InflightGauge
    last_request: float  # when a request last arrived: the listener drains until it is quiet

    def token_of(self, context: Any) -> tuple[str, str | None]: ...

    def refusal(self, token: str) -> str | None: ...

    async def run(self, request: InferenceRequest, timeout_s: float | None = None) -> ipb.InferenceResult: ...


class TaskChannelServicer(rgrpc.ReplicaServiceServicer):
    def __init__(self, ingress: ChannelHost) -> None:
        self._ingress = ingress

    async def RunTasks(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        ingress = self._ingress
        token, why = ingress.token_of(context)
        if why is not None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, why)
        await context.send_initial_metadata(((ACCEPTED_HEADER, "1"),))
        writing = asyncio.Lock()  # gRPC allows one write at a time on a call

        async def answer(message: rpb.RunTasksResponse) -> None:
            """Written by whichever task has it (no writer task in between: one loop turn less)."""
            async with writing:
                await context.write(message)

        # Reads until the caller closes its side, starting each request (or refusing it at once,
        # or stopping the one a cancel names), then answers what is still running and ends the call.
        running: dict[int, asyncio.Future[None]] = {}
        while (request := await context.read()) is not grpc.aio.EOF:
            ingress.last_request = time.monotonic()
            if request.cancel:
                # The task was cancelled: its call is given up (stoppable) and nothing is answered.
                if (job := running.get(request.tag)) is not None:
                    job.cancel()
                continue
            why = ingress.refusal(token)
            inference: InferenceRequest | None = None
            if why is None:
                try:
                    inference = request_of(request)
                except InvalidArgument as exc:
                    why = str(exc)
                except Exception as exc:  # noqa: BLE001 - one bad request must not end the others' channel
                    why = f"cannot read the request: {type(exc).__name__}: {exc}"
            if inference is None:
                FIGURES.finished("async_task", "channel", "refused", FIGURES.started())
                await answer(rpb.RunTasksResponse(tag=request.tag, refused=why or "refused"))
                continue
            ingress.gauge.change(1)  # counted from here, like a direct Predict, for the autoscaler
            job = asyncio.ensure_future(self._run(request.tag, inference, request.timeout_seconds, answer))
            running[request.tag] = job
            job.add_done_callback(lambda _, tag=request.tag: running.pop(tag, None))
        while running:
            await asyncio.wait(set(running.values()))

    async def _run(
        self,
        tag: int,
        request: InferenceRequest,
        timeout_s: float,
        answer: Callable[[rpb.RunTasksResponse], Awaitable[None]],
    ) -> None:
        ingress = self._ingress
        outcome, started = "cancelled", FIGURES.started()
        try:
            try:
                result = await ingress.run(request, timeout_s or None)
            except Exception as exc:  # noqa: BLE001 - every request read is answered, or the caller waits on
                # The runtime's predict never raises (a failing predict function is a FAILURE
                # answer): this is the replica's own failure, answered like one.
                result = ipb.InferenceResult(state=ipb.RESULT_STATE_FAILURE, traceback=f"the replica failed: {exc!r}")
            message = rpb.RunTasksResponse(tag=tag, result=result)
            if (size := message.ByteSize()) > MAX_ANSWER_BYTES:  # gRPC would fail the call: every task on it
                too_big = f"the answer is {size:,} bytes, over the {MAX_ANSWER_BYTES:,}-byte message limit"
                message = rpb.RunTasksResponse(
                    tag=tag, result=ipb.InferenceResult(state=ipb.RESULT_STATE_FAILURE, traceback=too_big)
                )
            outcome = "success" if message.result.state == ipb.RESULT_STATE_SUCCESS else "failure"
        finally:
            ingress.gauge.change(-1)
            FIGURES.finished("async_task", "channel", outcome, started)
        try:
            await answer(message)
        except Exception:  # noqa: BLE001 - the call ended (the caller went away): nobody to tell
            pass
