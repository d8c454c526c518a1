"""Async task rules: states, submission checks and the use cases behind TaskService. The queue's
moving parts (claiming with leases, retries, expiry, callbacks) live in launch_server/tasks/."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Protocol

from launch_server.domain.endpoints import EndpointRepository, EndpointStatus, EndpointType, is_batch_endpoint
from launch_server.domain.errors import FailedPrecondition, InvalidArgument, NotFound
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
    are being written; a result is written only once `durable` gives the rows as committed, and
    dropped when it gives None (a database error, or a repeated request_id whose earlier tasks
    stand), so such a failed submit may have run the predict function once, which at-least-once
    delivery allows. A submission that also queues tasks starts its admitted ones after the write,
    so a submit refused for a full queue ran nothing.

    A single task whose caller watches for its result (CreateAndWatchTask) that starts at once
    may have its row held back for up to `hold_s`, when the endpoint's recent answers came within
    it (answers_within): if the replica answers in time, the row is written once, already
    finished (one write instead of two, and the submit answers with the result); otherwise it is
    written STARTED at the end of the hold and finished later, as above. Either way the submit
    answers only after the row is committed, and a crash before that leaves nothing to lose: the
    client got no answer and retries with its request_id (at-least-once)."""

    def reserve(self, endpoint_id: str, count: int) -> tuple[int, str, float]:
        """How many of `count` tasks may start now, the worker id and the lease length."""
        ...

    def start(
        self, endpoint_id: str, tasks: list[Task], reserved: int, durable: asyncio.Future[list[Task] | None]
    ) -> list[asyncio.Future[Outcome | None]]:
        """Runs `tasks` (the first `reserved` of a submission) and gives back the reservations it
        does not use. Returns each task's answer to come: its Outcome, or None when the call failed
        (the task is then retried through its stored row)."""
        ...

    def answers_within(self, endpoint_id: str, hold_s: float) -> bool:
        """Do this endpoint's replicas usually answer within `hold_s` (worth holding a row back)?"""
        ...


class TaskRepository(Protocol):
    def add_many(self, tasks: list[Task], max_pending: int) -> list[Task]:
        """Inserts all or none; raises ResourceExhausted when the endpoint's queue would exceed
        max_pending, and returns the existing tasks for a repeated request_id."""
        ...

    def add_now(self, tasks: list[Task]) -> list[Task] | None:
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


class TaskService:
    def __init__(self, repo: TaskRepository, endpoints: EndpointRepository) -> None:
        self._repo = repo
        self._endpoints = endpoints
        self.on_submit = lambda endpoint_id: None  # wakes the dispatcher
        # Stops a cancelled task's call when this server runs it (a task run by another server
        # sharing the database is stopped there, at its next lease renewal).
        self.on_cancel: Callable[[str], object] = lambda task_id: None
        self.admission: Admission | None = None
        # How long a watched single task's row may wait for its replica's answer (see Admission).
        self.hold_s = 0.0
        self._recent_request_ids: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._writing: dict[tuple[str, str], asyncio.Future[list[Task]]] = {}  # by (owner, request_id)
        # An in-memory view of endpoints (the reconciler's), so a submit needs no endpoint query.
        self.cached_endpoint = lambda owner, name: None

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
        at once may then be answered already finished (see Admission)."""
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
        # A repeated request_id (an SDK retry) must not run its task again: it starts only after
        # the write, which answers the earlier tasks. Remembered per server, which is where a
        # retry of a call that reached this server lands; a retry that arrives while the earlier
        # submission is still being written (held for its answer, say) waits for that write.
        first_use = self._first_use(owner, request_id)
        key = (owner, request_id)
        if not first_use and (earlier := self._writing.get(key)) is not None:
            await asyncio.wait([earlier])
        reserved = 0
        durable: asyncio.Future[list[Task] | None] = asyncio.get_running_loop().create_future()
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
        admission, endpoint_id = self.admission, endpoint.endpoint_id
        early = admission is not None and reserved == len(tasks) and first_use
        answers = admission.start(endpoint_id, tasks, reserved, durable) if admission is not None and early else []
        held = watched and len(answers) == 1 and admission is not None
        hold_s = self.hold_s if held and admission.answers_within(endpoint_id, self.hold_s) else 0.0

        async def write() -> list[Task]:
            """Holds a watched single task's row back for its answer (see Admission), then writes;
            whatever happens, `durable` is settled and admitted tasks are started or given back."""
            rows, stored = tasks, None
            try:
                if hold_s:
                    await asyncio.wait(answers, timeout=hold_s)  # never cancels the call
                    outcome = answers[0].result() if answers[0].done() else None
                    if outcome is not None:
                        rows = [finished_task(tasks[0], outcome, datetime.now(UTC))]
                stored = self._repo.add_now(rows)
                if stored is None:
                    stored = await asyncio.to_thread(self._repo.add_many, rows, endpoint.settings.max_queue_size)
                return stored
            finally:
                wrote = stored is rows  # these very rows, not an error or a repeated request_id's tasks
                if not durable.done():
                    durable.set_result(rows if wrote else None)
                if admission is not None and not early:
                    admission.start(endpoint_id, rows[:reserved] if wrote else [], reserved, durable)
                if reserved < len(rows) and stored is not None:
                    self.on_submit(endpoint_id)  # the rest waits in the queue: wake the dispatcher

        # The write is its own task, which a cancelled RPC cannot stop, so `durable` is settled by
        # the write itself, never by the cancellation.
        writing = asyncio.ensure_future(write())
        if request_id:
            self._writing[key] = writing
            writing.add_done_callback(functools.partial(self._written, key))
        return await asyncio.shield(writing)

    def _written(self, key: tuple[str, str], done: asyncio.Future[list[Task]]) -> None:
        if self._writing.get(key) is done:
            del self._writing[key]

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
            self.on_cancel(task_id)
        return task
