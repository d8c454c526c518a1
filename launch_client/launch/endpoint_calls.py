"""EndpointCalls: the server calls behind predicts and tasks, shared by LaunchClient's request
methods and the endpoint objects (model_endpoint.EndpointBackend), so neither reaches into the
other. It owns the choices a request makes on the way: the direct route for sync and streaming
predicts, and one call (CreateAndWatchTask) for an async submit where the server offers it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from launch.v1 import inference_pb2 as ipb
from launch.v1 import model_endpoint_pb2 as epb
from launch.v1 import task_pb2 as tpb

from .connection import Connection, ServerStream
from .direct_route import DirectRouter
from .errors import DeadlineExceededError
from .model_endpoint import EndpointRequest
from .predict_stream import PredictStream
from .results import load_pickled_result
from .task_stream import TaskStream, create_and_watch

# Most tasks one BatchCreateTasks call carries (the server's limit).
BATCH_CREATE_MAX = 10_000


def task_spec(request: EndpointRequest) -> tpb.TaskSpec:
    return tpb.TaskSpec(
        input=request.to_input(),
        callback_url=request.callback_url or "",
        client_request_id=request.request_id or "",
    )


def fetch_route(connection: Connection, endpoint_name: str, timeout: float) -> epb.GetModelEndpointRouteResponse:
    """The direct route's fetch. Not retried: while the server cannot answer, predicts go
    through its Predict, which waits and gives the authoritative error."""
    return connection.call(
        connection.endpoints.GetModelEndpointRoute,
        epb.GetModelEndpointRouteRequest(name=endpoint_name),
        idempotent=False,
        timeout=timeout,
    )


class EndpointCalls:
    """Thread-safe, like the Connection it uses; one per LaunchClient."""

    def __init__(self, connection: Connection, direct: DirectRouter | None) -> None:
        self.connection = connection
        self.direct = direct
        self._create_and_watch = True  # until the server says it lacks CreateAndWatchTask

    def get_endpoint(self, name: str) -> epb.ModelEndpoint:
        return self.connection.call(
            self.connection.endpoints.GetModelEndpoint, epb.GetModelEndpointRequest(name=name), idempotent=True
        ).endpoint

    def predict(self, endpoint_name: str, request: EndpointRequest, timeout: float | None) -> ipb.InferenceResult:
        """Straight to a replica when the direct route can answer, else through the server."""
        message = ipb.PredictRequest(endpoint_name=endpoint_name, input=request.to_input())
        response = self.direct.predict(message, timeout or self.connection.timeout) if self.direct else None
        if response is None:
            response = self.connection.call(
                self.connection.inference.Predict, message, idempotent=False, timeout=timeout
            )
        return response.result

    def predict_stream(self, endpoint_name: str, request: EndpointRequest, timeout: float | None) -> PredictStream:
        """A streaming request, sent when its iteration starts: to a replica when the direct route
        can take it, else through the server. `timeout` (default: the connection's) bounds the
        whole stream, the attempt on the direct route included. Not retried: a stream runs the
        predict function, as Predict does."""
        message = ipb.PredictStreamRequest(endpoint_name=endpoint_name, input=request.to_input())
        limit = timeout or self.connection.timeout

        def open_stream(started: Callable[[Any], None]) -> ServerStream:
            deadline = time.monotonic() + limit
            opened = self.direct.open_stream(message, limit, started) if self.direct else None
            if opened is not None:
                return opened
            return self.connection.open_stream(
                self.connection.inference.PredictStream,
                message,
                timeout=max(0.0, deadline - time.monotonic()),
                idempotent=False,
                started=started,
            )

        return PredictStream(open_stream)

    def create_task(self, endpoint_name: str, request: EndpointRequest) -> str:
        response = self.connection.call(
            self.connection.tasks.CreateTask,
            tpb.CreateTaskRequest(request_id=uuid.uuid4().hex, endpoint_name=endpoint_name, task=task_spec(request)),
            idempotent=True,
        )
        return response.task.task_id

    def submit(self, endpoint_name: str, request: EndpointRequest) -> tuple[str, TaskStream | None]:
        """Submits one task and keeps its result stream open (one call); CreateTask where the server
        lacks CreateAndWatchTask. Returns the task id and the stream, if any."""
        if self._create_and_watch:
            stream = create_and_watch(self.connection, endpoint_name, task_spec(request))
            if stream is not None:
                return stream.latest.task_id, stream
            self._create_and_watch = False  # an older server: don't ask again
        return self.create_task(endpoint_name, request), None

    def submit_many(self, endpoint_name: str, requests: list[EndpointRequest]) -> dict[str, str]:
        """Queues requests in groups of up to BATCH_CREATE_MAX; returns client request id -> task id."""
        ids: dict[str, str] = {}
        for start in range(0, len(requests), BATCH_CREATE_MAX):
            group = requests[start : start + BATCH_CREATE_MAX]
            response = self.connection.call(
                self.connection.tasks.BatchCreateTasks,
                tpb.BatchCreateTasksRequest(
                    request_id=uuid.uuid4().hex, endpoint_name=endpoint_name, tasks=[task_spec(r) for r in group]
                ),
                idempotent=True,
            )
            for index, (request, task) in enumerate(zip(group, response.tasks, strict=True)):
                ids[request.request_id or str(start + index)] = task.task_id
        return ids

    def watch(self, task_ids: list[str], timeout: float | None) -> Iterator[tpb.Task]:
        try:
            for message in self.connection.stream(
                self.connection.tasks.WatchTasks, tpb.WatchTasksRequest(task_ids=task_ids), timeout=timeout
            ):
                yield message.task
        except DeadlineExceededError:
            raise TimeoutError(f"tasks not finished within {timeout} s") from None

    def load_pickled_result(self, result_url: str) -> Any:
        return load_pickled_result(self.connection, result_url)
