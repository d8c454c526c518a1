"""TaskService.submit's admission rules (task_queue/admission.py's AdmittingWriter), with in-memory
fakes of the repository and the dispatcher:
when a submission's tasks may start on a replica before their rows are durable, and when only
after (so a refused submit ran nothing and a retried request_id does not run again); and when a
watched single task's row is held back for its answer and written once, already finished."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from launch_server.domain.endpoints import Endpoint, EndpointSettings, EndpointStatus, EndpointType
from launch_server.domain.errors import ResourceExhausted
from launch_server.domain.requests import InferenceRequest
from launch_server.domain.tasks import Outcome, Task, TaskInput, TaskService, TaskState
from launch_server.task_queue.admission import AdmittingWriter

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
    """Stores rows by request_id; a repeated one answers the earlier tasks, like the SQL repository.
    add_without_waiting gives way (like PostgreSQL, or SQLite with its lock held) unless `now` is set."""

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.by_request: dict[str, list[Task]] = {}
        self.fail_with: Exception | None = None
        self.now = False

    def add_without_waiting(self, tasks: list[Task]) -> list[Task] | None:
        key = tasks[0].request_id or tasks[0].task_id
        if not self.now or key in self.by_request or any(t.state is TaskState.PENDING for t in tasks):
            return None
        self.events.append(f"write-now {','.join(t.state.value for t in tasks)}")
        self.by_request[key] = tasks
        return tasks

    def add_many(self, tasks: list[Task], max_pending: int) -> list[Task]:
        self.events.append(f"write {','.join(t.state.value for t in tasks)}")
        if self.fail_with is not None:
            raise self.fail_with
        key = tasks[0].request_id or tasks[0].task_id
        if key in self.by_request:
            return self.by_request[key]
        self.by_request[key] = tasks
        return tasks


class FakeAdmission:
    """Starts nothing for real: each started task is answered `answer_after` seconds later with
    `outcome` (None: the call failed), or never when answer_after is None."""

    def __init__(self, events: list[str], free: int) -> None:
        self.events, self.free = events, free
        self.started: list[tuple[list[str], list[Task] | None | str]] = []
        self.answer_after: float | None = None
        self.outcome: str | None = "SUCCESS"
        self.quick = True
        self.answers: list[asyncio.Future[Outcome | None]] = []

    def reserve(self, endpoint_id: str, count: int) -> tuple[int, str, float]:
        reserved = min(self.free, count)
        self.free -= reserved
        return reserved, "worker-1", 60.0

    def start(
        self, endpoint_id: str, tasks: list[Task], reserved: int, durable: asyncio.Future[list[Task] | None]
    ) -> list[asyncio.Future[Outcome | None]]:
        self.events.append("start")
        self.free += reserved - len(tasks)
        self.started.append(([t.task_id for t in tasks], durable.result() if durable.done() else "unsettled"))
        loop = asyncio.get_running_loop()
        answers: list[asyncio.Future[Outcome | None]] = [loop.create_future() for _ in tasks]
        self.answers.extend(answers)
        if self.answer_after is not None:
            for task, answer in zip(tasks, answers, strict=True):
                outcome = Outcome(task.task_id, TaskState(self.outcome), result="42") if self.outcome else None
                loop.call_later(self.answer_after, answer.set_result, outcome)
        return answers

    def answers_within(self, endpoint_id: str, hold_s: float) -> bool:
        return self.quick


class FakeLive:
    """The serving layer's live view, knowing one endpoint."""

    def endpoint_for(self, owner: str, name: str) -> Endpoint | None:
        return ENDPOINT if (owner, name) == ("alice", "slow") else None


def service(free: int, hold_s: float = 0.0) -> tuple[TaskService, FakeRepo, FakeAdmission, list[str]]:
    events: list[str] = []
    repo, admission = FakeRepo(events), FakeAdmission(events, free)
    writer = AdmittingWriter(repo, lambda endpoint_id: None, admission, hold_s)  # type: ignore[arg-type]
    tasks = TaskService(repo, endpoints=None, live=FakeLive(), writer=writer)  # type: ignore[arg-type]
    return tasks, repo, admission, events


def items(count: int) -> list[TaskInput]:
    return [
        TaskInput(work=InferenceRequest(args_json=f'{{"x": {i}}}'), callback_url="", client_request_id="")
        for i in range(count)
    ]


def test_a_submission_that_starts_whole_runs_while_its_row_is_written() -> None:
    tasks, _, admission, events = service(free=4)
    [task] = asyncio.run(tasks.submit("alice", "slow", items(1), "r1"))
    assert task.state is TaskState.STARTED
    assert events == ["start", "write STARTED"]  # the replica call began before the write was durable
    assert admission.started == [([task.task_id], "unsettled")]


def test_a_repeated_request_id_starts_nothing_early_and_runs_nothing_again() -> None:
    tasks, _, admission, events = service(free=4)

    async def twice() -> tuple[list[Task], list[Task]]:
        return await tasks.submit("alice", "slow", items(1), "r1"), await tasks.submit("alice", "slow", items(1), "r1")

    first, again = asyncio.run(twice())
    assert [t.task_id for t in again] == [t.task_id for t in first]
    assert events == ["start", "write STARTED", "write STARTED", "start"]  # the retry waited for its write...
    assert admission.started[1] == ([], None)  # ...which answered the earlier task: nothing started
    assert admission.free == 3  # only the first task's call holds a slot


def test_a_submission_that_also_queues_starts_its_admitted_tasks_after_the_write() -> None:
    tasks, _, admission, events = service(free=1)
    stored = asyncio.run(tasks.submit("alice", "slow", items(3), "r2"))
    assert [t.state for t in stored] == [TaskState.STARTED, TaskState.PENDING, TaskState.PENDING]
    assert events == ["write STARTED,PENDING,PENDING", "start"]
    assert admission.started == [([stored[0].task_id], stored)]


def test_a_submit_refused_for_a_full_queue_ran_nothing() -> None:
    tasks, repo, admission, events = service(free=1)
    repo.fail_with = ResourceExhausted("the queue of model endpoint 'slow' is full")
    with pytest.raises(ResourceExhausted):
        asyncio.run(tasks.submit("alice", "slow", items(3), "r3"))
    assert events == ["write STARTED,PENDING,PENDING", "start"]
    assert admission.started == [([], None)] and admission.free == 1  # reservation given back


def hold_service(hold_s: float = 0.5) -> tuple[TaskService, FakeRepo, FakeAdmission, list[str]]:
    return service(free=4, hold_s=hold_s)


def test_a_watched_task_answered_within_the_hold_is_written_once_finished() -> None:
    tasks, _, admission, events = hold_service()
    admission.answer_after = 0.01
    [task] = asyncio.run(tasks.submit("alice", "slow", items(1), "h1", watched=True))
    assert (task.state, task.result, task.attempts) == (TaskState.SUCCESS, "42", 1)
    assert task.finished_at is not None and task.lease_owner is None
    assert events == ["start", "write SUCCESS"]  # one write, of the finished row


def test_a_failed_answer_is_a_finished_failure_and_a_failed_call_is_retried_through_its_row() -> None:
    tasks, _, admission, events = hold_service()
    admission.answer_after, admission.outcome = 0.01, "FAILURE"
    [task] = asyncio.run(tasks.submit("alice", "slow", items(1), "h2", watched=True))
    assert task.state is TaskState.FAILURE  # the predict function raised: that is the task's result
    admission.outcome = None  # the call itself failed (a replica died): the dispatcher retries it
    [task] = asyncio.run(tasks.submit("alice", "slow", items(1), "h3", watched=True))
    assert task.state is TaskState.STARTED
    assert events == ["start", "write FAILURE", "start", "write STARTED"]


def test_a_watched_task_not_answered_within_the_hold_is_written_started_at_its_end() -> None:
    tasks, _, admission, events = hold_service(hold_s=0.05)
    admission.answer_after = 5.0
    started = asyncio.run(asyncio.wait_for(tasks.submit("alice", "slow", items(1), "h4", watched=True), 2))
    assert [t.state for t in started] == [TaskState.STARTED]
    assert events == ["start", "write STARTED"]


def test_no_hold_for_unwatched_submissions_nor_for_endpoints_known_to_be_slow() -> None:
    tasks, _, admission, events = hold_service(hold_s=5.0)
    admission.answer_after = 1.0

    async def submit(request_id: str, watched: bool) -> bool:
        """Whether the submit answered before the replica did."""
        [task] = await tasks.submit("alice", "slow", items(1), request_id, watched=watched)
        assert task.state is TaskState.STARTED
        return not admission.answers[-1].done()

    assert asyncio.run(submit("h5", watched=False))  # CreateTask answers with the stored task at once
    admission.quick = False
    assert asyncio.run(submit("h6", watched=True))  # this endpoint's answers take longer than the hold
    assert events == ["start", "write STARTED"] * 2


def test_a_write_that_need_not_wait_is_made_on_the_loop_and_counts_the_same() -> None:
    tasks, repo, admission, events = hold_service()
    repo.now, admission.answer_after = True, 0.01
    [task] = asyncio.run(tasks.submit("alice", "slow", items(1), "n1", watched=True))
    assert task.state is TaskState.SUCCESS and events == ["start", "write-now SUCCESS"]
    asyncio.run(tasks.submit("alice", "slow", items(2), "n2"))  # both start at once: written on the loop too
    assert events[-2:] == ["start", "write-now STARTED,STARTED"]
    stored = asyncio.run(tasks.submit("alice", "slow", items(3), "n3"))  # two must queue: add_many counts them
    assert events[-2:] == ["write STARTED,PENDING,PENDING", "start"] and len(stored) == 3


def test_a_retry_that_arrives_during_the_hold_waits_for_it_and_runs_nothing_again() -> None:
    tasks, _, admission, events = hold_service(hold_s=0.2)
    admission.answer_after = 0.1

    async def first_and_retry() -> tuple[list[Task], list[Task]]:
        first = asyncio.ensure_future(tasks.submit("alice", "slow", items(1), "d1", watched=True))
        await asyncio.sleep(0.02)  # the first is held for its answer, its row not yet written
        retry = await tasks.submit("alice", "slow", items(1), "d1", watched=True)
        return await first, retry

    first, retry = asyncio.run(first_and_retry())
    assert [t.task_id for t in retry] == [t.task_id for t in first] and first[0].state is TaskState.SUCCESS
    assert events == ["start", "write SUCCESS", "write STARTED", "start"]  # the retry wrote after the first...
    assert admission.started[1] == ([], None)  # ...got the earlier task back, and started nothing
    assert admission.free == 3  # only the first task's call holds a slot
