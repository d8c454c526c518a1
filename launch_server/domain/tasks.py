"""Async task rules: states, submission checks and the use cases behind TaskService. The queue's
moving parts (admission, claiming with leases, retries, expiry, callbacks) live in
launch_server/task_queue/; this module hands them plain rows, never futures."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Protocol

from launch_server.domain.endpoints import (
    Endpoint,
    EndpointRepository,
    EndpointStatus,
    EndpointType,
    is_batch_endpoint,
    type_error,
)
from launch_server.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from launch_server.domain.live_endpoints import LiveEndpoints
from launch_server.domain.requests import InferenceAnswer, TaskWork, task_work_from_json
from launch_server.domain.validation import validate_http_url, validate_id, validate_name, validate_request_id

MAX_BATCH = 10_000
MAX_WATCH = 10_000
RECENT_REQUEST_IDS = 100_000  # per server: (owner, request_id) pairs kept to recognise a retry


class TaskState(str, Enum):
    PENDING = "PENDING"
    STARTED = "STARTED"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    CANCELLED = "CANCELLED"


TERMINAL = frozenset({TaskState.SUCCESS, TaskState.FAILURE, TaskState.CANCELLED})


@dataclass(frozen=True)
class TaskInput:
    """One request to queue: an inference request, or a batch job's chunk of them."""

    work: TaskWork
    callback_url: str = ""
    client_request_id: str = ""


@dataclass(frozen=True)
class Task:
    task_id: str
    owner: str
    endpoint_id: str
    endpoint_name: str
    state: TaskState
    input_json: str
    callback_url: str
    client_request_id: str
    result: str
    result_url: str
    traceback: str
    attempts: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime
    request_id: str | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def work(self) -> TaskWork:
        """What the replica is asked to do, as stored in the row."""
        return task_work_from_json(self.input_json)


@dataclass(frozen=True)
class Outcome:
    """What a replica answered for one task."""

    task_id: str
    state: TaskState
    result: str = ""
    result_url: str = ""
    traceback: str = ""

    @classmethod
    def of(cls, task_id: str, answer: InferenceAnswer) -> Outcome:
        """The one place a replica's answer becomes a task's outcome."""
        return cls(
            task_id=task_id,
            state=TaskState.SUCCESS if answer.succeeded else TaskState.FAILURE,
            result=answer.result,
            result_url=answer.result_url,
            traceback=answer.traceback,
        )


class TaskRepository(Protocol):
    def add_many(self, tasks: list[Task], max_pending: int) -> list[Task]:
        """Inserts all or none; raises ResourceExhausted when the endpoint's queue would exceed
        max_pending, and returns the existing tasks for a repeated request_id."""
        ...

    def add_without_waiting(self, tasks: list[Task]) -> list[Task] | None:
        """Stores tasks that wait in no queue at once when that cannot block (never waits on a
        lock); None when it did not, and add_many (in a thread) must."""
        ...

    def get_many(self, owner: str, task_ids: list[str]) -> list[Task]: ...

    def cancel(self, owner: str, task_id: str) -> Task | None: ...


def new_task(
    owner: str,
    endpoint_id: str,
    endpoint_name: str,
    item: TaskInput,
    expiry_s: int,
    request_id: str | None,
    now: datetime,
) -> Task:
    return Task(
        task_id=uuid.uuid4().hex,
        owner=owner,
        endpoint_id=endpoint_id,
        endpoint_name=endpoint_name,
        state=TaskState.PENDING,
        input_json=item.work.to_json(),
        callback_url=item.callback_url,
        client_request_id=item.client_request_id,
        result="",
        result_url="",
        traceback="",
        attempts=0,
        created_at=now,
        updated_at=now,
        started_at=None,
        finished_at=None,
        expires_at=now + timedelta(seconds=expiry_s),
        request_id=request_id,
    )


def started_task(task: Task, worker: str, lease_s: float, now: datetime) -> Task:
    """The task as a worker takes it at once, skipping the queue: STARTED under that worker's lease."""
    return dataclasses.replace(
        task,
        state=TaskState.STARTED,
        lease_owner=worker,
        lease_expires_at=now + timedelta(seconds=lease_s),
        attempts=1,
        started_at=now,
    )


def finished_task(task: Task, outcome: Outcome, now: datetime) -> Task:
    """The task as its outcome leaves it: terminal, its lease released."""
    return dataclasses.replace(
        task,
        state=outcome.state,
        result=outcome.result,
        result_url=outcome.result_url,
        traceback=outcome.traceback,
        finished_at=now,
        updated_at=now,
        lease_owner=None,
        lease_expires_at=None,
    )


class TaskWriter(Protocol):
    """Stores a submission's rows (task_queue/admission.py), and may start some of them on a
    replica on the way: the domain decides what the rows are, the writer how and when they are
    written. `first_use` is False for a request_id this server saw lately (an SDK retry), whose
    tasks must not start again; `watched` says the caller streams the result on the same call."""

    async def store(self, endpoint: Endpoint, tasks: list[Task], first_use: bool, watched: bool) -> list[Task]:
        """The rows as committed (for a repeated request_id, the earlier submission's); raises
        what the repository raises (ResourceExhausted for a full queue)."""
        ...


class TaskService:
    """Async task use cases. Endpoints are looked up in the serving layer's live view first, so a
    submit needs no endpoint query; `on_cancel` stops a cancelled task's call when this server runs
    it (a task run by another server sharing the database is stopped there, at its next lease
    renewal)."""

    def __init__(
        self,
        repo: TaskRepository,
        endpoints: EndpointRepository,
        live: LiveEndpoints | None,
        writer: TaskWriter,
        on_cancel: Callable[[str], object] = lambda task_id: None,
    ) -> None:
        self._repo = repo
        self._endpoints = endpoints
        self._live = live
        self._writer = writer
        self._on_cancel = on_cancel
        self._recent_request_ids: OrderedDict[tuple[str, str], None] = OrderedDict()

    async def submit(
        self,
        owner: str,
        endpoint_name: str,
        items: list[TaskInput],
        request_id: str = "",
        internal: bool = False,
        watched: bool = False,
    ) -> list[Task]:
        """Stores the tasks before answering; from then on they are never lost. Users cannot
        submit to a batch job's own endpoint (internal=True is the job itself). `watched` says the
        caller streams the result on the same call (CreateAndWatchTask): a single task that starts
        at once may then be answered already finished (task_queue/admission.py)."""
        if is_batch_endpoint(endpoint_name) and not internal:
            raise NotFound("model endpoint", endpoint_name)
        validate_name("endpoint_name", endpoint_name)
        validate_request_id("request_id", request_id)
        if not items:
            raise InvalidArgument("tasks", "must hold at least one task")
        if len(items) > MAX_BATCH:
            raise InvalidArgument("tasks", f"at most {MAX_BATCH} tasks per call, got {len(items)}")
        for index, item in enumerate(items):
            if item.callback_url:
                validate_http_url(f"tasks[{index}].callback_url", item.callback_url)
            validate_request_id(f"tasks[{index}].client_request_id", item.client_request_id)
        endpoint = (self._live.endpoint_for(owner, endpoint_name) if self._live is not None else None) or (
            await asyncio.to_thread(self._endpoints.get, owner, endpoint_name)
        )
        if endpoint is None:
            raise NotFound("model endpoint", endpoint_name)
        wrong_type = type_error(endpoint_name, endpoint.settings.endpoint_type, (EndpointType.ASYNC,))
        if wrong_type is not None:  # sync and streaming endpoints answer within the call, not as tasks
            raise wrong_type
        if endpoint.status is EndpointStatus.DELETE_IN_PROGRESS:
            raise FailedPrecondition(f"model endpoint {endpoint_name!r} is being deleted")
        now = datetime.now(UTC)
        hooked = "callback" in endpoint.settings.post_inference_hooks
        tasks = [
            new_task(
                owner,
                endpoint.endpoint_id,
                endpoint.name,
                # The callback hook posts to the request's URL, else the endpoint's default.
                dataclasses.replace(
                    item, callback_url=(item.callback_url or endpoint.settings.default_callback_url) if hooked else ""
                ),
                endpoint.settings.task_expiry_seconds,
                f"{request_id}:{index}" if request_id else None,
                now,
            )
            for index, item in enumerate(items)
        ]
        # A repeated request_id (an SDK retry) must not run its task again. Remembered per server,
        # which is where a retry of a call that reached this server lands.
        return await self._writer.store(endpoint, tasks, self._first_use(owner, request_id), watched)

    def _first_use(self, owner: str, request_id: str) -> bool:
        """False when this server saw the request_id lately (the last RECENT_REQUEST_IDS)."""
        if not request_id:
            return True
        key = (owner, request_id)
        if key in self._recent_request_ids:
            return False
        self._recent_request_ids[key] = None
        if len(self._recent_request_ids) > RECENT_REQUEST_IDS:
            self._recent_request_ids.popitem(last=False)
        return True

    async def get_many(self, owner: str, task_ids: list[str], field: str = "task_ids") -> list[Task]:
        """Tasks in the order asked; any unknown (or another owner's) id is NOT_FOUND."""
        if not task_ids:
            raise InvalidArgument(field, "must name at least one task")
        if len(task_ids) > MAX_WATCH:
            raise InvalidArgument(field, f"at most {MAX_WATCH} task ids, got {len(task_ids)}")
        for index, task_id in enumerate(task_ids):
            validate_id(field if field == "task_id" else f"{field}[{index}]", task_id)
        unique = list(dict.fromkeys(task_ids))
        found = {t.task_id: t for t in await asyncio.to_thread(self._repo.get_many, owner, unique)}
        for task_id in unique:
            if task_id not in found:
                raise NotFound("task", task_id)
        return [found[t] for t in unique]

    async def cancel(self, owner: str, task_id: str) -> Task:
        validate_id("task_id", task_id)
        task = await asyncio.to_thread(self._repo.cancel, owner, task_id)
        if task is None:
            raise NotFound("task", task_id)
        if task.state is TaskState.CANCELLED:
            self._on_cancel(task_id)
        return task
