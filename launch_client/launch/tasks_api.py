"""The request methods of LaunchClient: one sync predict, one async task and its state, as the
documented dict-returning calls. The calls themselves are launch.endpoint_calls.EndpointCalls,
which the endpoint objects use too."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from launch.v1 import task_pb2 as tpb

from .client_core import ClientCore
from .model_endpoint import EndpointRequest, EndpointResponse, state_name
from .request_validation import validate_task_request


class TasksApi(ClientCore):
    def sync_request(
        self,
        endpoint_name: str,
        url: str | None = None,
        args: dict[str, Any] | None = None,
        return_pickled: bool = True,
    ) -> dict[str, Any]:
        """Runs one request on a sync endpoint; returns {"status", "result" | "result_url", "traceback"}."""
        validate_task_request(url=url, args=args)
        request = EndpointRequest(url=url, args=args, return_pickled=return_pickled)
        response = EndpointResponse.from_proto(self, self.endpoint_calls.predict(endpoint_name, request, None))
        return {k: v for k, v in vars(response).items() if k != "client" and v is not None}

    def async_request(
        self,
        endpoint_name: str,
        url: str | None = None,
        args: dict[str, Any] | None = None,
        callback_url: str | None = None,
        return_pickled: bool = True,
    ) -> str:
        """Queues one request on an async endpoint and returns its task id."""
        validate_task_request(url=url, args=args)
        return self.endpoint_calls.create_task(
            endpoint_name,
            EndpointRequest(url=url, args=args, callback_url=callback_url, return_pickled=return_pickled),
        )

    def get_async_response(self, async_task_id: str) -> dict[str, Any]:
        """{"state": PENDING|STARTED|SUCCESS|FAILURE|CANCELLED, "result" | "result_url", "traceback"}."""
        task = self.connection.call(
            self.connection.tasks.GetTask, tpb.GetTaskRequest(task_id=async_task_id), idempotent=True
        ).task
        out: dict[str, Any] = {"state": state_name(task.state)}
        if task.result.result:
            out["result"] = task.result.result
        if task.result.result_url:
            out["result_url"] = task.result.result_url
        if task.result.traceback:
            out["traceback"] = task.result.traceback
        return out

    def _watch_tasks(self, task_ids: list[str], timeout: float | None) -> Iterator[tpb.Task]:
        """The tasks' states as they change (tests watch another owner's task through this)."""
        return self.endpoint_calls.watch(task_ids, timeout)
