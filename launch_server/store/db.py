"""Engine creation and schema migration. SQLite runs in WAL mode with a busy timeout so the
server's threads and the key-management CLI can share one file. PostgreSQL gets connect and
statement timeouts and pre-pinged connections; on both, an outage raises StoreUnavailable."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import create_engine

from launch_server.store.outage import OutagePool, raise_outages_as_unavailable

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
WRITE_OPTION = "launch_write"


def writer(engine: Engine) -> Engine:
    """The same engine, marked so its transactions begin as writers (BEGIN IMMEDIATE on SQLite)."""
    return engine.execution_options(**{WRITE_OPTION: True})


def normalize_url(url: str) -> str:
    """Accepts postgresql:// URLs and routes them to psycopg 3, the driver we install."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


@dataclass(frozen=True)
class DbTimeouts:
    """How long a database step may take before it fails as StoreUnavailable (store/outage.py),
    so an outage answers UNAVAILABLE in bounded time instead of holding the caller's thread.
    connect_s: opening a PostgreSQL connection (libpq connect_timeout, whole seconds);
    statement_s: one PostgreSQL statement (statement_timeout), and SQLite's wait for the write
    lock (busy timeout); pool_s: waiting for a free pooled connection."""

    connect_s: float = 5.0
    statement_s: float = 30.0
    pool_s: float = 10.0


def create_sqlite_file(url: str) -> None:
    """Creates a SQLite database file owner-only before SQLite opens it (it holds the API key
    hashes and the route secret). SQLite gives the -wal and -shm files the database file's
    mode, so they are owner-only too; an existing file is left as it is."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return
    path = Path(parsed.database)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def make_engine(url: str, timeouts: DbTimeouts | None = None) -> Engine:
    url = normalize_url(url)
    create_sqlite_file(url)
    timeouts = timeouts or DbTimeouts()
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": timeouts.statement_s})
        busy_ms = int(timeouts.statement_s * 1000)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            # Let SQLAlchemy issue BEGIN itself (below) instead of the sqlite3 module's lazy BEGIN.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(connection) -> None:  # type: ignore[no-untyped-def]
            # Write transactions take the write lock up front: a deferred transaction that reads
            # and then writes can fail with SQLITE_BUSY when another writer committed in between
            # (busy_timeout does not retry that case); with IMMEDIATE, writers queue instead.
            # Reads stay deferred, so in WAL mode they never wait for a writer.
            immediate = connection.get_execution_options().get(WRITE_OPTION)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        raise_outages_as_unavailable(engine)
        return engine
    engine = create_engine(
        url,
        poolclass=OutagePool,
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,  # a connection the database dropped (restart) is replaced, not used
        pool_timeout=timeouts.pool_s,
        connect_args={
            "connect_timeout": max(1, math.ceil(timeouts.connect_s)),
            "options": f"-c statement_timeout={int(timeouts.statement_s * 1000)}",
        },
    )
    raise_outages_as_unavailable(engine)
    return engine


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Brings the schema to the newest migration; a no-op when it is already there."""
    create_sqlite_file(normalize_url(url))
    command.upgrade(alembic_config(url), "head")
