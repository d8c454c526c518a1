"""The task store's insert-without-waiting path (store/sqlite_nonblocking.py) on a real SQLite file, and its absence on
the real PostgreSQL: rows it writes read back exactly like rows SQLAlchemy writes, and it gives way
(writes nothing, waits for nothing) whenever it could not finish at once."""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from launch_server.domain.requests import InferenceRequest
from launch_server.domain.tasks import Outcome, Task, TaskInput, TaskState, finished_task, new_task
from launch_server.store.db import make_engine, upgrade, writer
from launch_server.store.task_repository import SqlTaskRepository
from tests.support import create_pg_database, drop_pg_database

FIELDS = [f.name for f in dataclasses.fields(Task) if f.name not in ("lease_owner", "lease_expires_at")]


@pytest.fixture()
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'launch.db'}"
    upgrade(url)
    return url


@pytest.fixture()
def repo(sqlite_url: str) -> Iterator[SqlTaskRepository]:
    engine = make_engine(sqlite_url)
    repository = SqlTaskRepository(engine)
    yield repository
    repository.close()
    engine.dispose()


def task(state: TaskState = TaskState.STARTED, request_id: str | None = None, callback_url: str = "") -> Task:
    now = datetime.now(UTC)
    pending = new_task(
        "alice", "e1", "echo", TaskInput(InferenceRequest(args_json="{}"), callback_url), 3600, request_id, now
    )
    if state is TaskState.PENDING:
        return pending
    started = dataclasses.replace(
        pending,
        state=TaskState.STARTED,
        attempts=1,
        started_at=now,
        lease_owner="w",
        lease_expires_at=now + timedelta(seconds=60),
    )
    if state is TaskState.STARTED:
        return started
    return finished_task(started, Outcome(started.task_id, state, result='{"y": 1}'), datetime.now(UTC))


def test_rows_written_now_read_back_like_rows_written_by_sqlalchemy(repo: SqlTaskRepository) -> None:
    now_rows = [task(TaskState.STARTED), task(TaskState.SUCCESS, request_id="r:0")]
    assert repo.add_without_waiting(now_rows) is now_rows
    thread_rows = [task(TaskState.STARTED), task(TaskState.SUCCESS, request_id="r2:0")]
    assert repo.add_many(thread_rows, max_pending=10) is thread_rows
    for written in (now_rows, thread_rows):
        read = {t.task_id: t for t in repo.get_many("alice", [t.task_id for t in written])}
        for row in written:
            assert {f: getattr(read[row.task_id], f) for f in FIELDS} == {f: getattr(row, f) for f in FIELDS}
    # Stored as the same text, so SQL comparisons of timestamps (the watch hub's) treat both alike.
    stored_text = text("SELECT created_at, started_at, finished_at, lease_expires_at FROM tasks WHERE task_id = :t")
    with repo._engine.connect() as connection:  # noqa: SLF001 - the test reads the stored text itself
        by_now = connection.execute(stored_text, {"t": now_rows[1].task_id}).one()
        by_thread = connection.execute(stored_text, {"t": thread_rows[1].task_id}).one()
    for stored in (by_now, by_thread):
        assert all(value is None or re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", value) for value in stored)
    assert [v is None for v in by_now] == [v is None for v in by_thread]
    since = min(t.created_at for t in now_rows + thread_rows) - timedelta(seconds=1)
    assert {t.task_id for t in repo.changed_since(since)} == {t.task_id for t in now_rows + thread_rows}


def test_a_task_stored_finished_has_its_callback_due(repo: SqlTaskRepository) -> None:
    done = task(TaskState.SUCCESS, callback_url="http://127.0.0.1:9/hook")
    assert repo.add_without_waiting([done]) is not None
    [job] = repo.due_callbacks(limit=10, hold_s=30)
    assert (job.task.task_id, job.url, job.task.result) == (done.task_id, "http://127.0.0.1:9/hook", '{"y": 1}')


def test_it_gives_way_without_waiting_when_another_writer_holds_the_lock(
    repo: SqlTaskRepository, sqlite_url: str
) -> None:
    other = make_engine(sqlite_url)
    locked, release = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:
        with writer(other).connect() as connection, connection.begin():  # BEGIN IMMEDIATE (store/db.py)
            locked.set()
            release.wait(30)

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    try:
        assert locked.wait(10)
        row = task()
        assert repo.add_without_waiting([row]) is None  # busy: nothing written, and it did not wait for the lock
        assert not release.is_set()  # (had it waited on busy_timeout, the holder would have let go by now)
    finally:
        release.set()
        holder.join()
        other.dispose()
    assert repo.get_many("alice", [row.task_id]) == []
    assert repo.add_without_waiting([row]) is not None  # the lock is free again


def test_it_leaves_queued_repeated_and_large_writes_to_add_many(repo: SqlTaskRepository) -> None:
    assert repo.add_without_waiting([task(TaskState.PENDING)]) is None  # the queue cap is counted by add_many
    first = task(request_id="same:0")
    assert repo.add_without_waiting([first]) is not None
    again = task(request_id="same:0")
    assert repo.add_without_waiting([again]) is None  # the unique request_id: add_many answers with the earlier task
    assert [t.task_id for t in repo.add_many([again], max_pending=10)] == [first.task_id]
    many = [task() for _ in range(17)]
    assert repo.add_without_waiting(many) is None
    assert repo.get_many("alice", [t.task_id for t in many]) == []


def test_the_connection_keeps_its_own_settings_and_checkpoints_happen_elsewhere(
    repo: SqlTaskRepository, sqlite_url: str
) -> None:
    for _ in range(50):
        assert repo.add_without_waiting([task()]) is not None
    own = repo._without_waiting._raw  # noqa: SLF001 - the insert-without-waiting connection itself
    assert own is not None and own.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
    assert repo.checkpoint() > 0  # the insert-without-waiting connection left its WAL frames for the checkpoint
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as connection:  # another connection of the engine: the usual settings
            assert connection.execute(text("PRAGMA busy_timeout")).scalar_one() == 30000
            assert connection.execute(text("PRAGMA wal_autocheckpoint")).scalar_one() == 1000
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgresql_has_no_insert_now_path() -> None:
    url = create_pg_database()
    try:
        upgrade(url)
        engine = make_engine(url)
        repository = SqlTaskRepository(engine)
        row = task()
        assert repository.add_without_waiting([row]) is None
        assert repository.checkpoint() == 0
        assert [t.task_id for t in repository.add_many([row], max_pending=10)] == [row.task_id]
        engine.dispose()
    finally:
        drop_pg_database(url)
