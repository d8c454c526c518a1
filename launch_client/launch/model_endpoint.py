"""Endpoints and requests: SyncEndpoint, AsyncEndpoint, StreamingEndpoint, EndpointRequest,
EndpointResponse, EndpointResponseStream, EndpointResponseFuture and AsyncEndpointBatchResponse,
as the Launch SDK documents them.

These objects reach the server only through `EndpointBackend`, the few calls they need, which the
client they were made with offers as `client.endpoint_calls`; so this module knows nothing of
LaunchClient itself."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from launch.v1 import inference_pb2 as ipb
from launch.v1 import model_endpoint_pb2 as epb

from .request_validation import validate_task_request

if TYPE_CHECKING:
    from launch.v1 import task_pb2 as tpb

    from .task_stream import TaskStream

TERMINAL_STATES = ("SUCCESS", "FAILURE", "CANCELLED")


def state_name(value: int) -> str:
    return ipb.ResultState.Name(value).removeprefix("RESULT_STATE_")


class ResultLoader(Protocol):
    """Where a pickled result is downloaded from (a LaunchClient)."""

    def load_pickled_result(self, result_url: str) -> Any: ...


class EndpointBackend(ResultLoader, Protocol):
    """The server calls endpoint objects make; launch.endpoint_calls.EndpointCalls is the one
    implementation. Errors are LaunchErrors."""

    def get_endpoint(self, name: str) -> epb.ModelEndpoint:
        """The endpoint as stored now."""
        ...

    def predict(self, endpoint_name: str, request: EndpointRequest, timeout: float | None) -> ipb.InferenceResult:
        """Runs one request on a sync endpoint."""
        ...

    def predict_stream(self, endpoint_name: str, request: EndpointRequest, timeout: float | None) -> ResultStream:
        """Runs one request on a streaming endpoint; its results, read lazily."""
        ...

    def submit(self, endpoint_name: str, request: EndpointRequest) -> tuple[str, TaskStream | None]:
        """Queues one task; its id, and the stream its result will come on, if the server offers one."""
        ...

    def submit_many(self, endpoint_name: str, requests: list[EndpointRequest]) -> dict[str, str]:
        """Queues many tasks; client request id (or index) -> task id."""
        ...

    def watch(self, task_ids: list[str], timeout: float | None) -> Iterator[tpb.Task]:
        """The tasks' states as they change; TimeoutError once `timeout` passes."""
        ...


class ResultStream(Protocol):
    """A streaming request's results as they arrive (launch.predict_stream.PredictStream): the
    call starts on the first next(); close() cancels it, from any thread."""

    def __next__(self) -> ipb.InferenceResult: ...

    def close(self) -> None: ...


class EndpointClient(ResultLoader, Protocol):
    """What an endpoint object is made with: a LaunchClient, or anything offering its calls."""

    @property
    def endpoint_calls(self) -> EndpointBackend: ...


@dataclass
class ModelEndpoint:
    """An endpoint as last read from the server."""

    name: str
    bundle_name: str | None = None
    status: str | None = None
    status_reason: str = ""
    endpoint_type: str | None = None
    endpoint_id: str | None = None
    resources: dict[str, Any] = field(default_factory=dict)
    workers: dict[str, Any] = field(default_factory=dict)
    post_inference_hooks: list[str] = field(default_factory=list)
    default_callback_url: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    generation: int = 0
    task_timeout_seconds: int | None = None  # async only: how long one task may run
    # Dynamic batching limits of a batch function (@launch.batched); None: the bundle's own.
    max_batch_size: int | None = None
    max_batch_wait_ms: int | None = None

    @classmethod
    def from_proto(cls, m: epb.ModelEndpoint) -> ModelEndpoint:
        return cls(
            name=m.name,
            bundle_name=m.bundle_name,
            status=epb.EndpointStatus.Name(m.status).removeprefix("ENDPOINT_STATUS_"),
            status_reason=m.status_reason,
            endpoint_type=epb.EndpointType.Name(m.endpoint_type).removeprefix("ENDPOINT_TYPE_").lower(),
            endpoint_id=m.endpoint_id,
            resources={
                "cpus": m.resources.cpus,
                "gpus": m.resources.gpus,
                "gpu_type": m.resources.gpu_type or None,
                "memory": m.resources.memory,
                "storage": m.resources.storage or None,
            },
            workers={
                "available_workers": m.workers.available_workers,
                "unavailable_workers": m.workers.unavailable_workers,
                "max_workers": m.workers.max_workers,
                "min_workers": m.workers.min_workers,
                "per_worker": m.workers.per_worker,
            },
            post_inference_hooks=list(m.post_inference_hooks),
            default_callback_url=m.default_callback_url or None,
            labels=dict(m.labels),
            generation=m.generation,
            task_timeout_seconds=m.task_timeout_seconds if m.HasField("task_timeout_seconds") else None,
            max_batch_size=m.batching.max_batch_size if m.batching.HasField("max_batch_size") else None,
            max_batch_wait_ms=m.batching.max_wait_ms if m.batching.HasField("max_wait_ms") else None,
        )


@dataclass
class EndpointRequest:
    """One request: exactly one of url and args. `request_id` is the client's own label."""

    url: str | None = None
    args: dict[str, Any] | None = None
    callback_url: str | None = None
    return_pickled: bool = True
    request_id: str | None = None

    def __post_init__(self) -> None:
        validate_task_request(url=self.url, args=self.args)

    def to_input(self) -> ipb.RequestInput:
        if self.url is not None:
            return ipb.RequestInput(url=self.url, return_pickled=self.return_pickled)
        return ipb.RequestInput(args_json=json.dumps(self.args, allow_nan=False), return_pickled=self.return_pickled)


class EndpointResponse:
    """The outcome of a request. With return_pickled, `result_url` names the stored object and
    load_result() downloads and unpickles it; otherwise `result` is the JSON text of the value."""

    def __init__(
        self,
        client: ResultLoader | None,
        status: str,
        result_url: str | None = None,
        result: str | None = None,
        traceback: str | None = None,
    ) -> None:
        self.client = client
        self.status = status
        self.result_url = result_url
        self.result = result
        self.traceback = traceback

    @classmethod
    def from_proto(cls, client: ResultLoader | None, result: ipb.InferenceResult) -> EndpointResponse:
        return cls(
            client=client,
            status=state_name(result.state),
            result_url=result.result_url or None,
            result=result.result or None,
            traceback=result.traceback or None,
        )

    def load_result(self) -> Any:
        """The return value itself: unpickled from result_url, or parsed from the JSON result."""
        if self.result_url:
            if self.client is None:
                raise ValueError("this response has no client to download its result with")
            return self.client.load_pickled_result(self.result_url)
        return json.loads(self.result) if self.result is not None else None

    def __repr__(self) -> str:
        return (
            f"EndpointResponse(status={self.status!r}, result={self.result!r}, "
            f"result_url={self.result_url!r}, traceback={self.traceback!r})"
        )


class Endpoint:
    """Base of SyncEndpoint, AsyncEndpoint and StreamingEndpoint."""

    def __init__(self, model_endpoint: ModelEndpoint, client: EndpointClient) -> None:
        self.model_endpoint = model_endpoint
        self.client = client

    @property
    def name(self) -> str:
        return self.model_endpoint.name

    def refresh(self) -> ModelEndpoint:
        fresh = self.client.endpoint_calls.get_endpoint(self.model_endpoint.name)
        self.model_endpoint = ModelEndpoint.from_proto(fresh)
        return self.model_endpoint

    def status(self) -> str:
        """The endpoint's status now: UPDATE_PENDING, UPDATE_IN_PROGRESS, READY, UPDATE_FAILED..."""
        return self.refresh().status or ""

    def resource_settings(self) -> dict[str, Any]:
        return dict(self.refresh().resources)

    def worker_settings(self) -> dict[str, Any]:
        return dict(self.refresh().workers)

    def __str__(self) -> str:
        return f"{type(self).__name__}(name={self.model_endpoint.name!r})"

    __repr__ = __str__


class SyncEndpoint(Endpoint):
    def predict(self, request: EndpointRequest, timeout: float | None = None) -> EndpointResponse:
        """Runs the request and returns its outcome; waits while a scaled-to-zero endpoint starts."""
        result = self.client.endpoint_calls.predict(self.model_endpoint.name, request, timeout)
        return EndpointResponse.from_proto(self.client, result)


class EndpointResponseStream:
    """A streaming request's responses, one per value the predict function yields, each as it
    arrives: status SUCCESS with `result` the value's JSON text; a FAILURE response (with its
    traceback) is the last. The request is sent when iteration starts; errors are LaunchErrors
    (DeadlineExceededError, a TimeoutError, once the predict's timeout passes). Stopping early
    (close(), leaving a `with` block, dropping the iterator) cancels the request, which closes
    the generator on the replica."""

    def __init__(self, client: ResultLoader | None, results: ResultStream) -> None:
        self.client = client
        self._results = results

    def __iter__(self) -> EndpointResponseStream:
        return self

    def __next__(self) -> EndpointResponse:
        return EndpointResponse.from_proto(self.client, next(self._results))

    def close(self) -> None:
        """Cancels the request (from any thread); iteration then ends."""
        self._results.close()

    def __enter__(self) -> EndpointResponseStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class StreamingEndpoint(Endpoint):
    def predict(self, request: EndpointRequest, timeout: float | None = None) -> EndpointResponseStream:
        """Runs the request and streams its values as the predict function yields them; waits
        while a scaled-to-zero endpoint starts. `timeout` bounds the whole stream (default: the
        client's). The request needs return_pickled=False: every value is answered as JSON text,
        and the server refuses return_pickled (InvalidArgumentError, raised when iteration starts)."""
        results = self.client.endpoint_calls.predict_stream(self.model_endpoint.name, request, timeout)
        return EndpointResponseStream(self.client, results)


class EndpointResponseFuture:
    """An async request's pending result. get() learns of completion from the server's stream (the
    submit call's own, else WatchTasks), never by fixed-interval polling, and honours a timeout."""

    def __init__(
        self, client: EndpointClient, endpoint_name: str, async_task_id: str, stream: TaskStream | None = None
    ) -> None:
        self.client = client
        self.endpoint_name = endpoint_name
        self.async_task_id = async_task_id
        self._stream = stream

    def get(self, timeout: float | None = None) -> EndpointResponse:
        """Blocks until the task finishes; raises TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        stream = self._stream
        if stream is not None:
            task = stream.wait(timeout)
            if task is not None:
                return EndpointResponse.from_proto(self.client, task.result)
            if stream.ended:
                self._stream = None  # ended or cancelled: watch on through WatchTasks
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        if remaining == 0.0:
            raise TimeoutError(f"task {self.async_task_id} did not finish in {timeout} s")
        for task in self.client.endpoint_calls.watch([self.async_task_id], remaining):
            if state_name(task.state) in TERMINAL_STATES:
                return EndpointResponse.from_proto(self.client, task.result)
        raise TimeoutError(f"task {self.async_task_id} did not finish in {timeout} s")

    def __repr__(self) -> str:
        return f"EndpointResponseFuture(task_id={self.async_task_id!r})"


class AsyncEndpointBatchResponse:
    """Many async requests watched together over one stream."""

    def __init__(self, client: EndpointClient, endpoint_name: str, request_ids: dict[str, str]) -> None:
        self.client = client
        self.endpoint_name = endpoint_name
        self.request_ids = request_ids  # client request id -> task id
        self.responses: dict[str, EndpointResponse | None] = {rid: None for rid in request_ids}

    def poll_endpoints(self, timeout: float | None = 0.0) -> None:
        """Updates responses with whatever finished, waiting at most `timeout` seconds."""
        task_to_request = {tid: rid for rid, tid in self.request_ids.items()}
        pending = [tid for rid, tid in self.request_ids.items() if self.responses[rid] is None]
        if not pending:
            return
        try:
            for task in self.client.endpoint_calls.watch(pending, timeout if timeout else 0.5):
                if state_name(task.state) in TERMINAL_STATES:
                    self.responses[task_to_request[task.task_id]] = EndpointResponse.from_proto(
                        self.client, task.result
                    )
        except TimeoutError:
            pass

    def is_done(self, poll: bool = True) -> bool:
        if poll:
            self.poll_endpoints()
        return all(r is not None for r in self.responses.values())

    def get_responses(self) -> dict[str, EndpointResponse | None]:
        return dict(self.responses)


class AsyncEndpoint(Endpoint):
    def predict(self, request: EndpointRequest) -> EndpointResponseFuture:
        """Queues the request; returns once the task is stored (durable), with its result to come
        on the same call."""
        task_id, stream = self.client.endpoint_calls.submit(self.model_endpoint.name, request)
        return EndpointResponseFuture(self.client, self.model_endpoint.name, task_id, stream)

    def predict_batch(self, requests: list[EndpointRequest]) -> AsyncEndpointBatchResponse:
        request_ids = self.client.endpoint_calls.submit_many(self.model_endpoint.name, requests)
        return AsyncEndpointBatchResponse(self.client, self.model_endpoint.name, request_ids)


def endpoint_name_of(model_endpoint: Endpoint | ModelEndpoint | str) -> str:
    """The name the server knows an endpoint by, from any form the SDK's methods accept."""
    if isinstance(model_endpoint, Endpoint):
        return model_endpoint.model_endpoint.name
    if isinstance(model_endpoint, ModelEndpoint):
        return model_endpoint.name
    if isinstance(model_endpoint, str):
        return model_endpoint
    raise TypeError("model_endpoint should be an Endpoint, a ModelEndpoint or a str")
