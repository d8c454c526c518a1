"""Shared server secrets live in the database: the first server makes one, every later one (and
every server sharing the database) reads the same value. Real SQLite and the real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from launch_server.store.db import make_engine, upgrade
from launch_server.store.secrets import shared_secret
from tests.support import create_pg_database, drop_pg_database


def _check(url: str) -> None:
    upgrade(url)
    first, second = make_engine(url), make_engine(url)  # two servers on one database
    try:
        made = shared_secret(first, "route")
        assert len(made) == 64 and int(made, 16) >= 0
        assert shared_secret(second, "route") == made
        assert shared_secret(first, "route") == made
        assert shared_secret(first, "other") != made
    finally:
        first.dispose()
        second.dispose()


def test_sqlite_servers_share_one_secret(tmp_path: Path) -> None:
    _check(f"sqlite:///{tmp_path / 's.db'}")


@pytest.mark.postgres
def test_postgres_servers_share_one_secret() -> None:
    url = create_pg_database()
    try:
        _check(url)
    finally:
        drop_pg_database(url)
