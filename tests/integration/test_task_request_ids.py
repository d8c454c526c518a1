"""A repeated request_id answers exactly that request's earlier tasks, on a real SQLite file and on
the real PostgreSQL: ids holding LIKE's wildcards, ids that differ only in case, and ids that are a
prefix of another (':' included) never see each other's tasks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from launch_server.domain.requests import InferenceRequest
from launch_server.domain.tasks import Task, TaskInput, new_task
from launch_server.store.db import make_engine
from launch_server.store.task_repository import SqlTaskRepository
from tests.support import fresh_database_url

# Each pair would match the other under the old `LIKE '<id>:%'` lookup (wildcards, case, prefixes).
REQUEST_IDS = ["a%", "a_b", "acb", "AB", "ab", "a", "a:1", "a:", "a%:0"]


@pytest.fixture(params=["sqlite", "postgresql"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlTaskRepository]:
    engine = make_engine(fresh_database_url(request.param, tmp_path, request.addfinalizer))
    repository = SqlTaskRepository(engine)
    yield repository
    repository.close()
    engine.dispose()


def submission(request_id: str, count: int, owner: str = "alice") -> list[Task]:
    """What TaskService.submit stores for one call: one row per item, "<request_id>:<index>"."""
    now = datetime.now(UTC)
    return [
        new_task(owner, "e1", "echo", TaskInput(InferenceRequest(args_json="{}")), 3600, f"{request_id}:{index}", now)
        for index in range(count)
    ]


def test_a_retry_gets_its_own_earlier_tasks_and_no_others(repo: SqlTaskRepository) -> None:
    earlier = {rid: repo.add_many(submission(rid, 3), max_pending=1000) for rid in REQUEST_IDS}
    for rid in REQUEST_IDS:
        answered = repo.add_many(submission(rid, 3), max_pending=1000)
        assert [t.task_id for t in answered] == [t.task_id for t in earlier[rid]], rid
        assert [t.request_id for t in answered] == [f"{rid}:{i}" for i in range(3)]


def test_a_retry_is_per_owner_and_keeps_its_order_past_one_query(repo: SqlTaskRepository) -> None:
    mine = repo.add_many(submission("r", 1200), max_pending=5000)
    theirs = repo.add_many(submission("r", 2, owner="bob"), max_pending=5000)
    answered = repo.add_many(submission("r", 1200), max_pending=5000)
    assert [t.task_id for t in answered] == [t.task_id for t in mine]
    assert not {t.task_id for t in theirs} & {t.task_id for t in answered}
