"""Async task rules: states, submission checks and the use cases behind TaskService. The queue's
moving parts (claiming with leases, retries, expiry, callbacks) live in launch_server/tasks/."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Protocol

from .endpoints import EndpointRepository, EndpointStatus, EndpointType, is_batch_endpoint
from .errors import FailedPrecondition, InvalidArgument, NotFound
from .validation import validate_name, validate_request_id

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
    """One request to queue: payload is the replica request ({"url"|"args_json", "return_pickled"})."""

    payload: dict[str, object]
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


@dataclass(frozen=True)
class Outcome:
    """What a replica answered for one task."""

    task_id: str
    state: TaskState
    result: str = ""
    result_url: str = ""
    traceback: str = ""


class Admission(Protocol):
    """Lets a submission start at once on a worker with free capacity, skipping the queue's
    claim step: the rows are written already STARTED under that worker's lease (so durability is
    the same). When every task of a submission can start, the replica calls begin while the rows
    are being written; a result is written only once `durable` says the rows are committed, and
    dropped otherwise (a database error, or a repeated request_id whose earlier tasks stand), so
    such a failed submit may have run the predict function once, which at-least-once delivery
    allows. A submission that also queues tasks starts its admitted ones after the write, so a
    submit refused for a full queue ran nothing."""

    def reserve(self, endpoint_id: str, count: int) -> tuple[int, str, float]:
        """How many of `count` tasks may start now, the worker id and the lease length."""
        ...

    def start(self, endpoint_id: str, tasks: list[Task], reserved: int, durable: asyncio.Future[bool]) -> None:
        """Runs `tasks` (the first `reserved` of a submission) and returns unused reservations."""
        ...


class TaskRepository(Protocol):
    def add_many(self, tasks: list[Task], max_pending: int) -> list[Task]:
        """Inserts all or none; raises ResourceExhausted when the endpoint's queue would exceed
        max_pending, and returns the existing tasks for a repeated request_id."""
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
        input_json=json.dumps(item.payload),
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


def _stored(write: asyncio.Future[list[Task]]) -> bool:
    """Did the write succeed (new rows, or a repeated request_id's earlier ones)?"""
    return not write.cancelled() and write.exception() is None


def _wrote(write: asyncio.Future[list[Task]], tasks: list[Task]) -> bool:
    """Did this write commit these very rows (not an error, not a repeated request_id's earlier tasks)?"""
    return _stored(write) and write.result() is tasks


class TaskService:
    def __init__(self, repo: TaskRepository, endpoints: EndpointRepository) -> None:
        self._repo = repo
        self._endpoints = endpoints
        self.on_submit = lambda endpoint_id: None  # wakes the dispatcher
        self.admission: Admission | None = None
        self._recent_request_ids: OrderedDict[tuple[str, str], None] = OrderedDict()
        # An in-memory view of endpoints (the reconciler's), so a submit needs no endpoint query.
        self.cached_endpoint = lambda owner, name: None

    async def submit(
        self, owner: str, endpoint_name: str, items: list[TaskInput], request_id: str = "", internal: bool = False
    ) -> list[Task]:
        """Stores the tasks before answering; from then on they are never lost. Users cannot
        submit to a batch job's own endpoint (internal=True is the job itself)."""
        if is_batch_endpoint(endpoint_name) and not internal:
            raise NotFound("model endpoint", endpoint_name)
        validate_name("endpoint_name", endpoint_name)
        validate_request_id("request_id", request_id)
        if not items:
            raise InvalidArgument("tasks", "must hold at least one task")
        if len(items) > MAX_BATCH:
            raise InvalidArgument("tasks", f"at most {MAX_BATCH} tasks per call, got {len(items)}")
        for index, item in enumerate(items):
            if item.callback_url and not item.callback_url.startswith(("http://", "https://")):
                raise InvalidArgument(f"tasks[{index}].callback_url", "must be an http(s) URL")
            if len(item.client_request_id) > 128:
                raise InvalidArgument(f"tasks[{index}].client_request_id", "must be at most 128 characters")
        endpoint = self.cached_endpoint(owner, endpoint_name) or await asyncio.to_thread(
            self._endpoints.get, owner, endpoint_name
        )
        if endpoint is None:
            raise NotFound("model endpoint", endpoint_name)
        if endpoint.settings.endpoint_type is not EndpointType.ASYNC:
            raise FailedPrecondition(
                f"model endpoint {endpoint_name!r} is sync: call InferenceService.Predict "
                "(SyncEndpoint.predict in the SDK) instead of queueing tasks"
            )
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
        reserved = 0
        durable: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self.admission is not None:
            reserved, worker, lease_s = self.admission.reserve(endpoint.endpoint_id, len(tasks))
            until = now + timedelta(seconds=lease_s)
            tasks[:reserved] = [
                dataclasses.replace(
                    t, state=TaskState.STARTED, lease_owner=worker, lease_expires_at=until, attempts=1, started_at=now
                )
                for t in tasks[:reserved]
            ]
        # When every task starts at once, the replica calls start while the rows are written (no
        # queue cap applies, so only a repeated request_id or a database error can refuse them).
        # Otherwise they start after the write, so a submit refused for a full queue ran nothing.
        # A repeated request_id (an SDK retry) must not run its task again: it starts only after
        # the write, which answers the earlier tasks. Remembered per server, which is where a
        # retry of a call that reached this server lands.
        first_use = self._first_use(owner, request_id)
        admission, endpoint_id = self.admission, endpoint.endpoint_id
        early = admission is not None and reserved == len(tasks) and first_use
        if admission is not None and early:
            admission.start(endpoint_id, tasks, reserved, durable)

        def on_written(done: asyncio.Future[list[Task]]) -> None:
            """Runs when the write ends, even if the RPC that submitted was cancelled meanwhile."""
            wrote = _wrote(done, tasks)
            if not durable.done():
                durable.set_result(wrote)
            if admission is not None and not early:
                admission.start(endpoint_id, tasks[:reserved] if wrote else [], reserved, durable)
            if reserved < len(tasks) and _stored(done):
                self.on_submit(endpoint_id)  # the rest waits in the queue: wake the dispatcher

        # The write runs in a thread that a cancelled RPC cannot stop, so `durable` is settled by
        # the write itself, never by the cancellation.
        write = asyncio.ensure_future(asyncio.to_thread(self._repo.add_many, tasks, endpoint.settings.max_queue_size))
        write.add_done_callback(on_written)
        return await asyncio.shield(write)

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
        unique = list(dict.fromkeys(task_ids))
        found = {t.task_id: t for t in await asyncio.to_thread(self._repo.get_many, owner, unique)}
        for task_id in unique:
            if task_id not in found:
                raise NotFound("task", task_id)
        return [found[t] for t in unique]

    async def cancel(self, owner: str, task_id: str) -> Task:
        if not task_id:
            raise InvalidArgument("task_id", "is required")
        task = await asyncio.to_thread(self._repo.cancel, owner, task_id)
        if task is None:
            raise NotFound("task", task_id)
        return task
