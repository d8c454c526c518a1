"""The endpoint methods of LaunchClient: create, edit, read, list and delete endpoints, and read
their creation logs. The settings of create and edit come from one table, launch.endpoint_fields."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from launch.v1 import model_endpoint_pb2 as epb

from .client_core import ClientCore
from .endpoint_fields import create_payload, endpoint_from_payload, updatable, update_request
from .endpoint_stats import EndpointStats, get_endpoint_stats
from .errors import NotFoundError
from .model_bundle import ModelBundle
from .model_endpoint import (
    AsyncEndpoint,
    Endpoint,
    ModelEndpoint,
    StreamingEndpoint,
    SyncEndpoint,
    endpoint_name_of,
)
from .runtime_logs import EndpointLogLine, stream_endpoint_logs

AnyEndpoint = SyncEndpoint | AsyncEndpoint | StreamingEndpoint


class EndpointsApi(ClientCore):
    def _wrap_endpoint(self, message: epb.ModelEndpoint) -> AnyEndpoint:
        """The endpoint object for its type (ModelEndpoint.endpoint_type: the enum's name in lower
        case, so "streaming" for ENDPOINT_TYPE_STREAMING)."""
        model_endpoint = ModelEndpoint.from_proto(message)
        if model_endpoint.endpoint_type == "async":
            return AsyncEndpoint(model_endpoint, self)
        if model_endpoint.endpoint_type == "streaming":
            return StreamingEndpoint(model_endpoint, self)
        return SyncEndpoint(model_endpoint, self)

    def create_model_endpoint(
        self,
        endpoint_name: str,
        model_bundle: ModelBundle | str,
        cpus: float = 3,
        memory: str = "8Gi",
        storage: str | None = None,
        gpus: int = 0,
        min_workers: int = 1,
        max_workers: int = 1,
        per_worker: int = 1,
        gpu_type: str | None = None,
        endpoint_type: str = "sync",
        post_inference_hooks: list[Any] | None = None,
        default_callback_url: str | None = None,
        update_if_exists: bool = False,
        labels: dict[str, str] | None = None,
        task_expiry_seconds: int | None = None,
        max_queue_size: int | None = None,
        task_timeout_seconds: int | None = None,
        max_batch_size: int | None = None,
        max_batch_wait_ms: int | None = None,
    ) -> AnyEndpoint:
        """Creates an endpoint (status UPDATE_PENDING at first). With update_if_exists, an
        existing endpoint of that name is edited instead, to every setting given here but its
        type, which is fixed at creation. `endpoint_type`: "sync" (SyncEndpoint), "async"
        (AsyncEndpoint) or "streaming" (StreamingEndpoint, whose predict yields each value its
        predict function yields). `task_timeout_seconds` (async only): how long one task may run
        before it is stopped and fails; None is the server's default. `max_batch_size` (1 to
        1024) and `max_batch_wait_ms` (0 to 1000) replace the bundle's @launch.batched limits:
        the most requests in one call of its batch function, and how long a worker waits for
        more before starting a batch that is not full. None keeps the decorator's; a bundle
        whose predict function is not a batch function cannot be served with either set."""
        arguments = dict(locals())  # first statement: exactly this call's arguments
        settings = {k: v for k, v in arguments.items() if k not in ("self", "endpoint_name", "update_if_exists")}
        if update_if_exists and self.get_model_endpoint(endpoint_name) is not None:
            return self._update_endpoint(endpoint_name, updatable(settings))
        payload = self.endpoint_auth_decorator_fn(create_payload(endpoint_name, settings))
        response = self.connection.call(
            self.connection.endpoints.CreateModelEndpoint,
            epb.CreateModelEndpointRequest(request_id=uuid.uuid4().hex, endpoint=endpoint_from_payload(payload)),
            idempotent=True,
        )
        return self._wrap_endpoint(response.endpoint)

    def edit_model_endpoint(
        self,
        model_endpoint: Endpoint | ModelEndpoint | str,
        model_bundle: ModelBundle | str | None = None,
        cpus: float | None = None,
        memory: str | None = None,
        storage: str | None = None,
        gpus: int | None = None,
        min_workers: int | None = None,
        max_workers: int | None = None,
        per_worker: int | None = None,
        gpu_type: str | None = None,
        post_inference_hooks: list[Any] | None = None,
        default_callback_url: str | None = None,
        labels: dict[str, str] | None = None,
        task_timeout_seconds: int | None = None,
        max_batch_size: int | None = None,
        max_batch_wait_ms: int | None = None,
    ) -> AnyEndpoint:
        """Changes only the settings given (a new bundle rolls out a new version); None leaves a
        setting as it is. `max_batch_size` and `max_batch_wait_ms` replace the batch function's
        limits as in create_model_endpoint."""
        changes = dict(locals())  # first statement: exactly this call's arguments
        del changes["self"], changes["model_endpoint"]
        return self._update_endpoint(endpoint_name_of(model_endpoint), changes)

    def _update_endpoint(self, name: str, changes: dict[str, Any]) -> AnyEndpoint:
        response = self.connection.call(
            self.connection.endpoints.UpdateModelEndpoint, update_request(name, changes), idempotent=True
        )
        return self._wrap_endpoint(response.endpoint)

    def get_model_endpoint(self, endpoint_name: str) -> AnyEndpoint | None:
        """The endpoint, or None when the caller has none of that name."""
        try:
            return self._wrap_endpoint(self.endpoint_calls.get_endpoint(endpoint_name))
        except NotFoundError:
            return None

    def list_model_endpoints(self) -> list[AnyEndpoint]:
        pages = self._pages(self.connection.endpoints.ListModelEndpoints, epb.ListModelEndpointsRequest, "endpoints")
        return [self._wrap_endpoint(e) for e in pages]

    def delete_model_endpoint(self, model_endpoint: Endpoint | ModelEndpoint | str) -> bool:
        response = self.connection.call(
            self.connection.endpoints.DeleteModelEndpoint,
            epb.DeleteModelEndpointRequest(name=endpoint_name_of(model_endpoint)),
            idempotent=False,
        )
        return response.deleted

    def read_endpoint_creation_logs(self, model_endpoint: Endpoint | ModelEndpoint | str) -> str:
        """The endpoint's events (status transitions, serving messages) and replica logs, as text."""
        response = self.connection.call(
            self.connection.endpoints.ReadModelEndpointCreationLogs,
            epb.ReadModelEndpointCreationLogsRequest(name=endpoint_name_of(model_endpoint)),
            idempotent=True,
        )
        lines = [
            f"{e.time.ToDatetime():%Y-%m-%d %H:%M:%S} "
            f"{epb.EndpointStatus.Name(e.status).removeprefix('ENDPOINT_STATUS_')}: {e.message}"
            for e in response.events
        ]
        if response.logs:
            lines += ["", response.logs]
        return "\n".join(lines)

    def stream_endpoint_logs(
        self,
        model_endpoint: Endpoint | ModelEndpoint | str,
        since_seconds: float | None = None,
        follow: bool = False,
    ) -> Iterator[EndpointLogLine]:
        """What the endpoint's replicas' user code printed (stdout, stderr) and logged (the
        logging module, INFO and up), and the tracebacks of its failed requests, oldest first,
        from replicas on any node: each line with its time, replica and stream. `since_seconds`:
        only the last this many seconds (at most 7 days); None for every line kept (about the
        last 4 MiB per replica, up to an hour after it stopped). With `follow`, new lines keep
        coming until you stop iterating (break or close() ends the call)."""
        return stream_endpoint_logs(self.connection, endpoint_name_of(model_endpoint), since_seconds, follow)

    def get_endpoint_stats(
        self, endpoint_names: list[str] | None = None, window_seconds: float | None = None
    ) -> list[EndpointStats]:
        """Live figures of your endpoints (the named ones, at most 100; every one when None),
        sorted by name: requests and errors per second and end-to-end p50/p99 over the last
        `window_seconds` (default 10, at most 60), requests in flight, queued async tasks and the
        oldest one's wait, workers running, starting and desired. Figures are a few seconds
        behind; another owner's endpoints never appear (a name you have no endpoint of raises
        NotFoundError)."""
        return get_endpoint_stats(self.connection, endpoint_names, window_seconds)
