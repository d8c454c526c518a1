"""WatchHub and the watch RPCs' bounds (issue #11, finding 4), on a real SQLite task store: a
watcher that never reads holds one state per watched task however often the tasks change, the
periodic backstop asks only for changed rows (yet still finds a row whose commit landed after the
short window), final tasks leave the polls, and a too-large watch subscribes nothing."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from launch.v1 import task_pb2 as tpb
from sqlalchemy import update
from sqlmodel import Session

from launch_server.api import auth
from launch_server.api.tasks import TaskServicer
from launch_server.domain.errors import InvalidArgument
from launch_server.domain.requests import InferenceRequest
from launch_server.domain.tasks import MAX_WATCH, Outcome, Task, TaskInput, TaskState, finished_task, new_task
from launch_server.store.db import make_engine, upgrade, writer
from launch_server.store.tables import TaskRow
from launch_server.store.task_repository import SqlTaskRepository
from launch_server.task_queue import watch
from launch_server.task_queue.watch import Watcher, WatchHub, supersedes


@pytest.fixture()
def repo(tmp_path: Path) -> Iterator[SqlTaskRepository]:
    url = f"sqlite:///{tmp_path / 'launch.db'}"
    upgrade(url)
    engine = make_engine(url)
    repository = SqlTaskRepository(engine)
    yield repository
    repository.close()
    engine.dispose()


def pending(n: int) -> list[Task]:
    now = datetime.now(UTC)
    return [
        new_task("alice", "e1", "echo", TaskInput(InferenceRequest(args_json="{}")), 3600, None, now) for _ in range(n)
    ]


def rewrite(repo: SqlTaskRepository, task_ids: list[str], state: TaskState, updated_at: datetime) -> None:
    """What another server sharing the database does to the rows (claims, requeues)."""
    with Session(writer(repo._engine)) as session:
        session.exec(
            update(TaskRow).where(TaskRow.task_id.in_(task_ids)).values(state=state.value, updated_at=updated_at)
        )
        session.commit()


class Spy:
    """The real repository, counting what the hub's polls ask and get."""

    def __init__(self, repo: SqlTaskRepository) -> None:
        self.repo = repo
        self.backstops: list[tuple[int, datetime | None, int]] = []  # (ids asked, since, rows got)
        self.short_polls = 0

    def get_by_ids(self, task_ids: list[str], since: datetime | None = None) -> list[Task]:
        rows = self.repo.get_by_ids(task_ids, since)
        self.backstops.append((len(task_ids), since, len(rows)))
        return rows

    def changed_since(self, since: datetime, limit: int = 50_000) -> list[Task]:
        self.short_polls += 1
        return self.repo.changed_since(since, limit)


async def run_hub(hub: WatchHub, until: Any, timeout: float = 30.0) -> None:
    """Runs the hub's poll loop until `until()` holds (bounded)."""
    stop = asyncio.Event()
    loop = asyncio.create_task(hub.run(stop))
    try:
        for _ in range(int(timeout / 0.01)):
            if until():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the hub did not get there in time")
    finally:
        stop.set()
        await loop


def test_a_watcher_that_never_reads_holds_one_state_per_task(repo: SqlTaskRepository) -> None:
    tasks = repo.add_many(pending(50), max_pending=1000)
    ids = [t.task_id for t in tasks]

    async def scenario() -> Watcher:
        hub = WatchHub(repo, poll_s=0.01)
        watcher = hub.subscribe(ids)  # and never reads
        base = datetime.now(UTC)
        for step in range(200):  # the tasks change 200 times each, seen by polls and by publishes
            state = TaskState.STARTED if step % 2 else TaskState.PENDING
            when = base + timedelta(milliseconds=step)
            rewrite(repo, ids, state, when)
            hub.publish(dataclasses.replace(t, state=state, updated_at=when) for t in tasks)
            if step % 50 == 0:
                await run_hub(hub, lambda: True)
        assert len(watcher) <= len(ids)
        return watcher

    watcher = asyncio.run(scenario())
    newest = asyncio.run(watcher.changes())
    assert len(newest) == len(ids)
    assert {t.state for t in newest} == {TaskState.STARTED}  # the last write, not a backlog


def test_the_backstop_asks_only_for_changed_rows_and_finds_a_late_commit(
    repo: SqlTaskRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watch, "BACKSTOP_EVERY", 5)
    tasks = repo.add_many(pending(30), max_pending=1000)
    ids = [t.task_id for t in tasks]
    rewrite(repo, ids, TaskState.PENDING, datetime.now(UTC) - timedelta(hours=1))  # long unchanged
    spy = Spy(repo)

    async def scenario() -> Watcher:
        hub = WatchHub(spy, poll_s=0.01)  # type: ignore[arg-type]
        watcher = hub.subscribe(ids)
        await run_hub(hub, lambda: len(spy.backstops) >= 2)
        assert all(since is not None and rows == 0 for _, since, rows in spy.backstops)  # nothing changed
        # A row stamped well before the short window but committed only now (a slow commit).
        rewrite(repo, ids[:1], TaskState.STARTED, datetime.now(UTC) - timedelta(seconds=10))
        before = len(spy.backstops)
        await run_hub(hub, lambda: len(spy.backstops) > before + 1 and len(watcher) > 0)
        return watcher

    watcher = asyncio.run(scenario())
    [late] = asyncio.run(watcher.changes())
    assert late.task_id == ids[0] and late.state is TaskState.STARTED
    assert spy.short_polls > 0


def test_final_tasks_leave_the_hub_and_are_never_replaced_by_older_reads(repo: SqlTaskRepository) -> None:
    [task] = repo.add_many(pending(1), max_pending=10)
    started = dataclasses.replace(task, state=TaskState.STARTED, updated_at=task.updated_at + timedelta(seconds=1))
    done = finished_task(started, Outcome(task.task_id, TaskState.SUCCESS, result="1"), started.updated_at)
    hub = WatchHub(repo)
    watcher = hub.subscribe([task.task_id])
    hub.publish([done])
    assert hub.watched_ids == 0  # a final task is not polled for any more
    hub.publish([started])  # a poll's read from before the result: ignored
    [got] = asyncio.run(watcher.changes())
    assert got.state is TaskState.SUCCESS
    assert supersedes(done, started) and not supersedes(started, done)


class RecordingHub(WatchHub):
    def __init__(self) -> None:
        super().__init__(repo=None, poll_s=1)  # type: ignore[arg-type]
        self.subscribed: list[int] = []

    def subscribe(self, task_ids: Any) -> Watcher:
        task_ids = list(task_ids)
        self.subscribed.append(len(task_ids))
        return super().subscribe(task_ids)


class NoService:
    async def get_many(self, owner: str, task_ids: list[str], field: str = "task_ids") -> list[Task]:
        raise AssertionError("a too-large watch must not be read either")


def test_a_too_large_watch_subscribes_nothing() -> None:
    hub = RecordingHub()
    servicer = TaskServicer(NoService(), hub, storage=None)  # type: ignore[arg-type]
    request = tpb.WatchTasksRequest(task_ids=[f"{i:032x}" for i in range(MAX_WATCH + 1)])

    async def scenario() -> None:
        auth.current_owner.set("alice")
        with pytest.raises(InvalidArgument) as err:
            async for _ in servicer.WatchTasks(request, None):  # type: ignore[arg-type]
                pass
        assert err.value.field == "task_ids"

    asyncio.run(scenario())
    assert hub.subscribed == [] and hub.watched_ids == 0
