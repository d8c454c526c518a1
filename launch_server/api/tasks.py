"""TaskService servicer: durable async submission, reads, cancellation, watch streams and
result download."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from launch.v1 import inference_pb2 as ipb
from launch.v1 import task_pb2 as tpb
from launch.v1 import task_pb2_grpc as tgrpc

from launch_server.api.auth import owner
from launch_server.api.convert import timestamp
from launch_server.api.results import download_result
from launch_server.domain.errors import InvalidArgument, NotServedHere
from launch_server.domain.ports import ObjectStorage
from launch_server.domain.tasks import MAX_WATCH, Task, TaskInput, TaskService
from launch_server.task_queue.watch import Watcher, WatchHub, supersedes
from launch_server.wire.messages import request_from_proto

STATES = {
    "PENDING": ipb.RESULT_STATE_PENDING,
    "STARTED": ipb.RESULT_STATE_STARTED,
    "SUCCESS": ipb.RESULT_STATE_SUCCESS,
    "FAILURE": ipb.RESULT_STATE_FAILURE,
    "CANCELLED": ipb.RESULT_STATE_CANCELLED,
}


def task_to_proto(task) -> tpb.Task:  # type: ignore[no-untyped-def]
    state = STATES[task.state.value]
    return tpb.Task(
        task_id=task.task_id,
        endpoint_name=task.endpoint_name,
        state=state,
        result=ipb.InferenceResult(
            state=state, result=task.result, result_url=task.result_url, traceback=task.traceback
        ),
        client_request_id=task.client_request_id,
        create_time=timestamp(task.created_at),
        start_time=timestamp(task.started_at),
        end_time=timestamp(task.finished_at),
        attempts=task.attempts,
    )


def task_input(spec: tpb.TaskSpec, field: str) -> TaskInput:
    if not spec.HasField("input"):
        raise InvalidArgument(f"{field}.input", "is required")
    return TaskInput(
        work=request_from_proto(spec.input, f"{field}.input"),
        callback_url=spec.callback_url,
        client_request_id=spec.client_request_id,
    )


def only_task(tasks: list[Task]) -> Task:
    """The one task of a single submission; a request_id that earlier named a whole batch is refused."""
    if len(tasks) != 1:
        raise InvalidArgument("request_id", f"already names a batch of {len(tasks)} tasks")
    return tasks[0]


class TaskServicer(tgrpc.TaskServiceServicer):
    def __init__(self, tasks: TaskService | None, hub: WatchHub | None, storage: ObjectStorage) -> None:
        self._tasks = tasks
        self._hub = hub
        self._storage = storage

    def _service(self) -> TaskService:
        if self._tasks is None:
            raise NotServedHere("async tasks need the serving layer (LAUNCH_SERVING=1)")
        return self._tasks

    async def CreateTask(
        self, request: tpb.CreateTaskRequest, context: grpc.aio.ServicerContext
    ) -> tpb.CreateTaskResponse:
        if not request.HasField("task"):
            raise InvalidArgument("task", "is required")
        item = task_input(request.task, "task")
        tasks = await self._service().submit(owner(), request.endpoint_name, [item], request.request_id)
        return tpb.CreateTaskResponse(task=task_to_proto(only_task(tasks)))

    async def BatchCreateTasks(
        self, request: tpb.BatchCreateTasksRequest, context: grpc.aio.ServicerContext
    ) -> tpb.BatchCreateTasksResponse:
        items = [task_input(spec, f"tasks[{i}]") for i, spec in enumerate(request.tasks)]
        tasks = await self._service().submit(owner(), request.endpoint_name, items, request.request_id)
        return tpb.BatchCreateTasksResponse(tasks=[task_to_proto(t) for t in tasks])

    async def GetTask(self, request: tpb.GetTaskRequest, context: grpc.aio.ServicerContext) -> tpb.GetTaskResponse:
        if not request.task_id:
            raise InvalidArgument("task_id", "is required")
        [task] = await self._service().get_many(owner(), [request.task_id], "task_id")
        return tpb.GetTaskResponse(task=task_to_proto(task))

    async def CancelTask(
        self, request: tpb.CancelTaskRequest, context: grpc.aio.ServicerContext
    ) -> tpb.CancelTaskResponse:
        task = await self._service().cancel(owner(), request.task_id)
        if self._hub is not None:
            self._hub.publish([task])
        return tpb.CancelTaskResponse(task=task_to_proto(task))

    async def CreateAndWatchTask(
        self, request: tpb.CreateAndWatchTaskRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[tpb.CreateAndWatchTaskResponse]:
        if not request.HasField("task"):
            raise InvalidArgument("task", "is required")
        item = task_input(request.task, "task")
        tasks = await self._service().submit(owner(), request.endpoint_name, [item], request.request_id, watched=True)
        task = only_task(tasks)
        if task.terminal:  # stored already finished (answered within the hold), or an earlier finished task
            yield tpb.CreateAndWatchTaskResponse(task=task_to_proto(task))
            return
        # Subscribed before the next await, so the dispatcher's result for a new task (published
        # from this event loop) cannot slip in between. A repeated request_id's earlier task may
        # change between its read and this line; the hub's poll of watched ids delivers that.
        watcher = self._watch_hub().subscribe([task.task_id])
        try:
            async for change in self._follow(watcher, [task]):
                yield tpb.CreateAndWatchTaskResponse(task=task_to_proto(change))
        finally:
            self._watch_hub().unsubscribe(watcher, [task.task_id])

    async def WatchTasks(
        self, request: tpb.WatchTasksRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[tpb.WatchTasksResponse]:
        service = self._service()
        if len(request.task_ids) > MAX_WATCH:  # refused before anything is subscribed
            raise InvalidArgument("task_ids", f"at most {MAX_WATCH} task ids, got {len(request.task_ids)}")
        ids = list(dict.fromkeys(request.task_ids))
        # Subscribe before reading, so a change between the read and the subscription is not lost.
        watcher = self._watch_hub().subscribe(ids)
        try:
            tasks = await service.get_many(owner(), ids)
            async for change in self._follow(watcher, tasks):
                yield tpb.WatchTasksResponse(task=task_to_proto(change))
        finally:
            self._watch_hub().unsubscribe(watcher, ids)

    def _watch_hub(self) -> WatchHub:
        assert self._hub is not None  # set whenever the task service is
        return self._hub

    async def _follow(self, watcher: Watcher, tasks: list[Task]) -> AsyncIterator[Task]:
        """Each task as it is now, then its newest state whenever that changed, until all are
        finished. A client that reads slowly skips intermediate states, never the final one."""
        hub = self._watch_hub()
        sent: dict[str, Task] = {}
        for task in tasks:
            sent[task.task_id] = task
            yield task
        waiting = {t.task_id for t in tasks if not t.terminal}
        hub.unsubscribe(watcher, [t.task_id for t in tasks if t.terminal])  # keeps the hub's polls small
        while waiting:
            for task in await watcher.changes():
                last = sent.get(task.task_id)
                if task.task_id not in waiting or last is None or last.state == task.state:
                    continue
                if not supersedes(task, last):  # an older read than what was sent already
                    continue
                sent[task.task_id] = task
                yield task
                if task.terminal:
                    waiting.discard(task.task_id)

    def DownloadResult(self, request, context):  # type: ignore[no-untyped-def]
        return download_result(self._storage, request, context)
