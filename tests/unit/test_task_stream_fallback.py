"""The SDK against a server from before CreateAndWatchTask: AsyncEndpoint.predict must fall back
to CreateTask + WatchTasks, once, and never queue a task twice. The old server is a real gRPC
server on a free loopback port whose TaskService answers only the calls an older launch-server
had (the generated base class answers UNIMPLEMENTED for the rest, as grpc does for an unknown
method)."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent import futures

import grpc
import launch
import pytest
from launch.model_endpoint import ModelEndpoint
from launch.v1 import inference_pb2 as ipb
from launch.v1 import task_pb2 as tpb
from launch.v1 import task_pb2_grpc as tgrpc

from tests.support import free_port


class OlderTaskService(tgrpc.TaskServiceServicer):
    """CreateTask + WatchTasks only; a task finishes with its own input as the result."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.tasks: dict[str, tpb.Task] = {}
        self.lock = threading.Lock()

    def CreateAndWatchTask(self, request, context):  # type: ignore[no-untyped-def]
        self.calls["CreateAndWatchTask"] += 1
        return super().CreateAndWatchTask(request, context)

    def CreateTask(self, request, context):  # type: ignore[no-untyped-def]
        self.calls["CreateTask"] += 1
        task = tpb.Task(
            task_id=uuid.uuid4().hex,
            endpoint_name=request.endpoint_name,
            state=ipb.RESULT_STATE_SUCCESS,
            result=ipb.InferenceResult(state=ipb.RESULT_STATE_SUCCESS, result=request.task.input.args_json),
        )
        with self.lock:
            self.tasks[task.task_id] = task
        return tpb.CreateTaskResponse(task=tpb.Task(task_id=task.task_id, state=ipb.RESULT_STATE_PENDING))

    def WatchTasks(self, request, context):  # type: ignore[no-untyped-def]
        self.calls["WatchTasks"] += 1
        for task_id in request.task_ids:
            yield tpb.WatchTasksResponse(task=self.tasks[task_id])


@pytest.fixture()
def older_server():  # type: ignore[no-untyped-def]
    service = OlderTaskService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    tgrpc.add_TaskServiceServicer_to_server(service, server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    yield service, f"127.0.0.1:{port}"
    server.stop(0)


def test_predict_falls_back_to_create_task_and_watch(older_server) -> None:  # type: ignore[no-untyped-def]
    service, address = older_server
    client = launch.LaunchClient(api_key="launch_key_x", endpoint=address)
    endpoint = launch.AsyncEndpoint(ModelEndpoint(name="old-ep", endpoint_type="async"), client)
    for i in range(3):
        response = endpoint.predict(launch.EndpointRequest(args={"x": i}, return_pickled=False)).get(timeout=10)
        assert (response.status, response.result) == ("SUCCESS", f'{{"x": {i}}}')
    # Asked once, learned the server lacks it, and queued each task exactly once.
    assert service.calls == Counter({"CreateAndWatchTask": 1, "CreateTask": 3, "WatchTasks": 3})
    assert len(service.tasks) == 3
