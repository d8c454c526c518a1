"""TaskService.submit's admission rules, with in-memory fakes of the repository and the dispatcher:
when a submission's tasks may start on a replica before their rows are durable, and when only
after (so a refused submit ran nothing and a retried request_id does not run again)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from launch_server.domain.endpoints import Endpoint, EndpointSettings, EndpointStatus, EndpointType
from launch_server.domain.errors import ResourceExhausted
from launch_server.domain.tasks import Task, TaskInput, TaskService, TaskState

NOW = datetime(2026, 11, 27, tzinfo=UTC)
ENDPOINT = Endpoint(
    endpoint_id="e1",
    owner="alice",
    name="slow",
    bundle_id="b1",
    bundle_name="b",
    settings=EndpointSettings(bundle_name="b", endpoint_type=EndpointType.ASYNC, max_queue_size=2),
    status=EndpointStatus.READY,
    status_reason="",
    generation=1,
    created_at=NOW,
    updated_at=NOW,
)


class FakeRepo:
    """Stores rows by request_id; a repeated one answers the earlier tasks, like the SQL repository."""

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.by_request: dict[str, list[Task]] = {}
        self.fail_with: Exception | None = None

    def add_many(self, tasks: list[Task], max_pending: int) -> list[Task]:
        self.events.append("write")
        if self.fail_with is not None:
            raise self.fail_with
        key = tasks[0].request_id or tasks[0].task_id
        if key in self.by_request:
            return self.by_request[key]
        self.by_request[key] = tasks
        return tasks


class FakeAdmission:
    def __init__(self, events: list[str], free: int) -> None:
        self.events, self.free = events, free
        self.started: list[tuple[list[str], bool | None]] = []

    def reserve(self, endpoint_id: str, count: int) -> tuple[int, str, float]:
        reserved = min(self.free, count)
        self.free -= reserved
        return reserved, "worker-1", 60.0

    def start(self, endpoint_id: str, tasks: list[Task], reserved: int, durable: asyncio.Future[bool]) -> None:
        self.events.append("start")
        self.free += reserved - len(tasks)
        self.started.append(([t.task_id for t in tasks], durable.result() if durable.done() else None))


def service(free: int) -> tuple[TaskService, FakeRepo, FakeAdmission, list[str]]:
    events: list[str] = []
    repo, admission = FakeRepo(events), FakeAdmission(events, free)
    tasks = TaskService(repo, endpoints=None)  # type: ignore[arg-type]
    tasks.cached_endpoint = lambda owner, name: ENDPOINT if (owner, name) == ("alice", "slow") else None
    tasks.admission = admission
    return tasks, repo, admission, events


def items(count: int) -> list[TaskInput]:
    return [TaskInput(payload={"args": {"x": i}}, callback_url="", client_request_id="") for i in range(count)]


def test_a_submission_that_starts_whole_runs_while_its_row_is_written() -> None:
    tasks, _, admission, events = service(free=4)
    [task] = asyncio.run(tasks.submit("alice", "slow", items(1), "r1"))
    assert task.state is TaskState.STARTED
    assert events == ["start", "write"]  # the replica call began before the write was durable
    assert admission.started == [([task.task_id], None)]


def test_a_repeated_request_id_starts_nothing_early_and_runs_nothing_again() -> None:
    tasks, _, admission, events = service(free=4)

    async def twice() -> tuple[list[Task], list[Task]]:
        return await tasks.submit("alice", "slow", items(1), "r1"), await tasks.submit("alice", "slow", items(1), "r1")

    first, again = asyncio.run(twice())
    assert [t.task_id for t in again] == [t.task_id for t in first]
    assert events == ["start", "write", "write", "start"]  # the retry waited for its write...
    assert admission.started[1] == ([], False)  # ...which answered the earlier task: nothing started
    assert admission.free == 3  # only the first task's call holds a slot


def test_a_submission_that_also_queues_starts_its_admitted_tasks_after_the_write() -> None:
    tasks, _, admission, events = service(free=1)
    stored = asyncio.run(tasks.submit("alice", "slow", items(3), "r2"))
    assert [t.state for t in stored] == [TaskState.STARTED, TaskState.PENDING, TaskState.PENDING]
    assert events == ["write", "start"]
    assert admission.started == [([stored[0].task_id], True)]


def test_a_submit_refused_for_a_full_queue_ran_nothing() -> None:
    tasks, repo, admission, events = service(free=1)
    repo.fail_with = ResourceExhausted("the queue of model endpoint 'slow' is full")
    with pytest.raises(ResourceExhausted):
        asyncio.run(tasks.submit("alice", "slow", items(3), "r3"))
    assert events == ["write", "start"]
    assert admission.started == [([], False)] and admission.free == 1  # reservation given back
