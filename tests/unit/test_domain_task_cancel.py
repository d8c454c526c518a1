"""TaskService.cancel tells this server's dispatcher to stop the task's call (on_cancel) when the
cancel took effect, and not for a task that had already finished; unknown ids are NOT_FOUND."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

import pytest

from launch_server.domain.errors import InvalidArgument, NotFound
from launch_server.domain.requests import InferenceRequest
from launch_server.domain.tasks import Task, TaskInput, TaskService, TaskState, new_task

NOW = datetime(2026, 12, 2, tzinfo=UTC)


class FakeRepo:
    def __init__(self, tasks: list[Task]) -> None:
        self.tasks = {t.task_id: t for t in tasks}

    def cancel(self, owner: str, task_id: str) -> Task | None:
        task = self.tasks.get(task_id)
        if task is None or task.owner != owner:
            return None
        if not task.terminal:
            task = self.tasks[task_id] = dataclasses.replace(task, state=TaskState.CANCELLED)
        return task


def make(state: TaskState) -> Task:
    return dataclasses.replace(
        new_task("alice", "e1", "ep", TaskInput(InferenceRequest()), 3600, None, NOW), state=state
    )


def test_cancel_reaches_the_dispatcher_only_when_it_took_effect() -> None:
    running, done = make(TaskState.STARTED), make(TaskState.SUCCESS)
    stopped: list[str] = []
    service = TaskService(
        FakeRepo([running, done]),  # type: ignore[arg-type]
        endpoints=None,  # type: ignore[arg-type]
        live=None,
        writer=None,  # type: ignore[arg-type]
        on_cancel=stopped.append,
    )
    assert asyncio.run(service.cancel("alice", running.task_id)).state is TaskState.CANCELLED
    assert asyncio.run(service.cancel("alice", done.task_id)).state is TaskState.SUCCESS
    assert stopped == [running.task_id]
    with pytest.raises(NotFound):
        asyncio.run(service.cancel("bob", running.task_id))
    with pytest.raises(InvalidArgument):
        asyncio.run(service.cancel("alice", ""))
