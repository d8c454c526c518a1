"""A task cancelled through any server is found by the server that runs it at its next lease
renewal (SqlTaskRepository.extend_leases), on a real SQLite file and the real PostgreSQL: that
is how a cancel reaches a task whose lease another server holds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from launch_server.domain.requests import InferenceRequest
from launch_server.domain.tasks import Outcome, TaskInput, TaskState, new_task
from launch_server.store.db import make_engine
from launch_server.store.tables import TaskRow
from launch_server.store.task_repository import SqlTaskRepository
from tests.support import fresh_database_url


@pytest.fixture(params=["sqlite", "postgresql"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[SqlTaskRepository, Engine]]:
    engine = make_engine(fresh_database_url(request.param, tmp_path, request.addfinalizer))
    repository = SqlTaskRepository(engine)
    yield repository, engine
    repository.close()
    engine.dispose()


def leases_of(engine: Engine, ids: list[str]) -> dict[str, tuple[str | None, object]]:
    with Session(engine) as session:
        rows = session.exec(select(TaskRow).where(TaskRow.task_id.in_(ids))).all()
        return {r.task_id: (r.lease_owner, r.lease_expires_at) for r in rows}


def test_lease_renewal_reports_cancelled_tasks_and_stops_renewing_them(
    repo: tuple[SqlTaskRepository, Engine],
) -> None:
    repo, engine = repo
    now = datetime.now(UTC)
    tasks = [
        new_task("alice", "e1", "echo", TaskInput(InferenceRequest(args_json="{}")), 3600, None, now) for _ in range(3)
    ]
    repo.add_many(tasks, max_pending=100)
    claimed = repo.claim("e1", 10, "server-a", lease_s=60)
    ids = [c.task_id for c in claimed]
    assert len(ids) == 3
    assert repo.extend_leases(ids, "server-a", 60) == []
    # Cancelled through "another server" (the same database, any connection).
    assert repo.cancel("alice", ids[1]).state is TaskState.CANCELLED
    assert repo.extend_leases(ids, "server-a", 600) == [ids[1]]
    leases = leases_of(engine, ids)
    assert leases[ids[1]][0] is None  # its lease is no longer renewed
    assert leases[ids[0]][0] == leases[ids[2]][0] == "server-a"
    # A late answer for the cancelled task is dropped; the others are written.
    outcomes = [Outcome(task_id=i, state=TaskState.SUCCESS, result="late") for i in ids]
    assert {t.task_id for t in repo.complete(outcomes, "server-a")} == {ids[0], ids[2]}
    assert {t.task_id: t.state for t in repo.get_by_ids(ids)}[ids[1]] is TaskState.CANCELLED
    assert repo.extend_leases([], "server-a", 60) == []
