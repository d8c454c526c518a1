"""Inserting a few rows into SQLite at once or not at all: one short transaction on a connection of
its own, taken only when the write lock is free at that moment.

Why: an async request is stored with one INSERT on its way to the client (two when its replica
is slow), and that INSERT is on the request's critical path. Through SQLAlchemy Core in a worker
thread it pays for a pool checkout, statement and parameter processing and two thread hops;
straight through the DBAPI on the calling thread it pays for none of them. Running it on the
server's event loop is safe only because it never waits:
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


class NonBlockingInsert:
    """Insert-without-waiting for one table of a SQLite engine (`usable` is False on any other database).

    Its connection is opened when this is made (at server start, before requests arrive, so no
    request's loop turn waits on the pool) and detached from the pool, so its settings never
    reach another user of the engine."""

    def __init__(self, engine: Engine, table: Table) -> None:
        self._engine = engine
        self.usable = engine.dialect.name == "sqlite"
        dialect = engine.dialect
        self._names = [column.name for column in table.columns]
        # The dialect's own type (sqlite.DATETIME for DateTime), whose processor writes the text
        # SQLAlchemy itself writes; the generic type has none and would leave it to sqlite3.
        self._processors = [column.type.dialect_impl(dialect).bind_processor(dialect) for column in table.columns]
        self._sql = f"INSERT INTO {table.name} ({', '.join(self._names)}) VALUES ({', '.join('?' * len(self._names))})"
        self._lock = threading.Lock()  # one user of the connection at a time; never waited on
        self._proxy: Any = None  # the pool's wrapper, detached; kept so it is closed when we say
        self._raw: sqlite3.Connection | None = self._open() if self.usable else None

    def insert(self, rows: list[dict[str, Any]]) -> bool:
        """True when the rows were committed; False when nothing was written because it would have
        had to wait (the write lock is held, or another thread is inside) or could not be done here
        (too many rows, a constraint such as a repeated request_id, any SQLite error): the caller
        then writes through its usual path, which reports errors with SQLAlchemy's own types.
        Anything else (a row that does not fit the table, say) is raised, with nothing written."""
        if self._raw is None or not rows or len(rows) > MAX_ROWS:
            return False
        parameters = [self._parameters(row) for row in rows]  # before BEGIN: a bad row holds no lock
        if not self._lock.acquire(blocking=False):
            return False
        try:
            connection = self._raw
            try:
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                return False  # SQLITE_BUSY: another writer holds the lock right now
            try:
                connection.executemany(self._sql, parameters)
                connection.execute("COMMIT")
            except BaseException as exc:
                self._roll_back()
                if isinstance(exc, sqlite3.Error):
                    log.debug("insert-without-waiting gave way to the thread path: %s", exc)
                    return False
                raise
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
            self._drop()

    def _roll_back(self) -> None:
        """Ends a failed transaction; a connection that cannot is dropped, never left holding the lock."""
        assert self._raw is not None
        try:
            if self._raw.in_transaction:
                self._raw.execute("ROLLBACK")
        except sqlite3.Error:
            log.warning("insert-without-waiting could not roll back; closing its connection", exc_info=True)
            self._drop()

    def _drop(self) -> None:
        if self._proxy is not None:
            self._proxy.close()  # detached: this closes the SQLite connection itself
        self._proxy = self._raw = None

    def _parameters(self, row: dict[str, Any]) -> list[Any]:
        return [
            process(row[name]) if process is not None else row[name]
            for name, process in zip(self._names, self._processors, strict=True)
        ]

    def _open(self) -> sqlite3.Connection:
        # The engine's connect hook has set WAL, synchronous=NORMAL and autocommit mode
        # (isolation_level=None), so BEGIN and COMMIT are ours to issue. Detached: closing it
        # closes it, and the pool never hands these settings to anyone else.
        proxy = self._engine.raw_connection()
        raw = proxy.driver_connection
        proxy.detach()
        raw.execute("PRAGMA busy_timeout=0")
        raw.execute("PRAGMA wal_autocheckpoint=0")
        self._proxy = proxy
        return raw
