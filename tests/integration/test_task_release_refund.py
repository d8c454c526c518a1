"""A task whose call failed because the whole Ray cluster was gone is put back with its attempt
given back (SqlTaskRepository.release with refund), so an outage never uses up a task's
attempts; an ordinary failed call still counts. Real SQLite file and the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from launch_server.domain.requests import InferenceRequest
from launch_server.domain.tasks import TaskInput, TaskState, new_task
from launch_server.store.task_repository import SqlTaskRepository
from tests.integration.test_task_lease_cancel import repo  # noqa: F401 - the fixture


def test_refunded_release_keeps_the_attempt_and_an_ordinary_one_spends_it(
    repo: tuple[SqlTaskRepository, object],  # noqa: F811
) -> None:
    repository, _ = repo
    now = datetime.now(UTC)
    repository.add_many(
        [new_task("alice", "e1", "echo", TaskInput(InferenceRequest(args_json="{}")), 3600, None, now)], 100
    )
    for _ in range(3):  # more outages than attempts: none of them counts
        [claimed] = repository.claim("e1", 10, "server-a", lease_s=60)
        assert repository.release([claimed.task_id], "server-a", "Ray cluster unreachable", 2, refund=True) == []
        [task] = repository.get_by_ids([claimed.task_id])
        assert (task.state, task.attempts) == (TaskState.PENDING, 0)
    [claimed] = repository.claim("e1", 10, "server-a", lease_s=60)
    assert repository.release([claimed.task_id], "server-a", "the worker died", 2) == []
    [claimed] = repository.claim("e1", 10, "server-a", lease_s=60)
    [failed] = repository.release([claimed.task_id], "server-a", "the worker died", 2)
    assert failed.state is TaskState.FAILURE and failed.attempts == 2
