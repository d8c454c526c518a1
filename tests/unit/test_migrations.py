"""The Alembic migrations produce exactly the schema the sqlmodel tables declare, on SQLite and
on PostgreSQL, so a fresh install and an upgraded one never differ."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from launch_server.store import tables  # noqa: F401
from launch_server.store.db import make_engine, upgrade
from tests.support import create_pg_database, drop_pg_database


def _diff(url: str) -> list:
    upgrade(url)
    upgrade(url)  # a second run is a no-op
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    finally:
        engine.dispose()


def test_sqlite_schema_matches_tables(tmp_path: Path) -> None:
    assert _diff(f"sqlite:///{tmp_path / 'm.db'}") == []


@pytest.mark.postgres
def test_postgres_schema_matches_tables() -> None:
    url = create_pg_database()
    try:
        assert _diff(url) == []
    finally:
        drop_pg_database(url)
