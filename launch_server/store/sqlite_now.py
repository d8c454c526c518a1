"""Inserting a few rows into SQLite at once or not at all: one short transaction on a connection of
its own, taken only when the write lock is free at that moment.

Why: an async request is stored with one INSERT on its way to the client (two when its replica
is slow), and that INSERT is on the request's critical path. Through SQLAlchemy's ORM-free Core
in a worker thread it cost ≈ 0.9 ms inside a busy server (pool checkout, statement and parameter
processing, two thread hops); straight through the DBAPI on the calling thread ≈ 0.3 ms. Running
it on the server's event loop is safe only because it never waits:
- the connection's busy timeout is 0, so a lock held by another writer makes BEGIN fail at once
  and the caller takes its usual worker-thread path instead;
- it never checkpoints (wal_autocheckpoint=0), so no fsync runs on the calling thread; the other
  connections' commits checkpoint as usual, and `checkpoint()` (run from a worker thread by the
  server's maintenance loop) covers the case where only this connection writes.
Values pass through SQLAlchemy's own bind processors for each column's type, so the rows read
back exactly like rows that SQLAlchemy wrote. PostgreSQL has no such path (every commit there is
a network round trip), so callers get None and use their thread."""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)
MAX_ROWS = 16  # the loop is blocked while this runs: only small writes take this path


class SqliteNow:
    """Insert-now for one table of a SQLite engine (`usable` is False on any other database)."""

    def __init__(self, engine: Engine, table: Table) -> None:
        self._engine = engine
        self.usable = engine.dialect.name == "sqlite"
        self._names = [column.name for column in table.columns]
        self._processors = [column.type.bind_processor(engine.dialect) for column in table.columns]
        self._sql = f"INSERT INTO {table.name} ({', '.join(self._names)}) VALUES ({', '.join('?' * len(self._names))})"
        self._lock = threading.Lock()  # one user of the connection at a time; never waited on
        self._proxy: Any = None  # the pool's connection, held for as long as this object lives

    def insert(self, rows: list[dict[str, Any]]) -> bool:
        """True when the rows were committed; False when nothing was written because it would have
        had to wait (the write lock is held, or another thread is inside) or could not be done here
        (too many rows, a constraint such as a repeated request_id, any SQLite error): the caller
        then writes through its usual path, which reports errors with SQLAlchemy's own types."""
        if not self.usable or not rows or len(rows) > MAX_ROWS or not self._lock.acquire(blocking=False):
            return False
        try:
            connection = self._connection()
            try:
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                return False  # SQLITE_BUSY: another writer holds the lock right now
            try:
                connection.executemany(self._sql, [self._parameters(row) for row in rows])
                connection.execute("COMMIT")
            except sqlite3.Error as exc:
                connection.execute("ROLLBACK")
                log.debug("insert-now gave way to the thread path: %s", exc)
                return False
            return True
        finally:
            self._lock.release()

    def checkpoint(self) -> int:
        """Copies the write-ahead log into the database file (PASSIVE: never waits for readers);
        returns how many of its frames are now in the file. Blocking (it fsyncs): call it from a
        worker thread."""
        if not self.usable:
            return 0
        with self._engine.connect() as connection:
            _busy, _frames, copied = connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        return max(0, int(copied))

    def close(self) -> None:
        with self._lock:
            if self._proxy is not None:
                self._proxy.invalidate()  # closed, not pooled: its pragmas are not for other users
                self._proxy = None

    def _parameters(self, row: dict[str, Any]) -> list[Any]:
        return [
            process(row[name]) if process is not None else row[name]
            for name, process in zip(self._names, self._processors, strict=True)
        ]

    def _connection(self) -> sqlite3.Connection:
        if self._proxy is None:
            # The engine's connect hook has set WAL, synchronous=NORMAL and autocommit mode
            # (isolation_level=None), so BEGIN and COMMIT are ours to issue.
            proxy = self._engine.raw_connection()
            raw = proxy.driver_connection
            raw.execute("PRAGMA busy_timeout=0")
            raw.execute("PRAGMA wal_autocheckpoint=0")
            self._proxy = proxy
        return self._proxy.driver_connection
