"""Database outages as a domain error. A lost, refused or timed-out database connection (PostgreSQL
down or restarting, a statement or pool timeout, SQLite's write lock held past the busy timeout)
is raised to the layers above as `StoreUnavailable`, which the api layer answers as UNAVAILABLE:
a client may retry it, where an unknown exception would read as a server bug (INTERNAL).

The translation happens on the engine itself (SQLAlchemy's handle_error event, and the pool's
checkout), so every repository gets it and no layer above the store sees SQLAlchemy's types."""

from __future__ import annotations

import logging
import sqlite3
import time

import psycopg
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine, ExceptionContext
from sqlalchemy.pool import QueuePool

from launch_server.domain.errors import StoreUnavailable

log = logging.getLogger(__name__)
LOG_EVERY_S = 5.0
_last_logged = -LOG_EVERY_S
_SQLITE_BUSY = ("database is locked", "database table is locked", "database is busy")


def is_outage(error: BaseException, *, disconnect: bool = False) -> bool:
    """Whether a database error means "not reachable or not answering now" rather than a bad
    statement: a disconnect; any psycopg OperationalError (connection refused or lost, admin
    shutdown, the server starting up, statement_timeout's QueryCanceled); SQLite's busy lock."""
    if disconnect or getattr(error, "connection_invalidated", False):
        return True
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection came free in pool_timeout
        return True
    original = error.orig if isinstance(error, sa_exc.DBAPIError) else error
    if isinstance(original, psycopg.OperationalError):
        return True
    return isinstance(original, sqlite3.OperationalError) and str(original).lower().startswith(_SQLITE_BUSY)


def _unavailable(error: BaseException) -> StoreUnavailable:
    """The client's error names the kind of outage only: the driver's text (host, port, user)
    goes to the server log, at most once per LOG_EVERY_S so an outage does not flood it."""
    global _last_logged
    original = error.orig if isinstance(error, sa_exc.DBAPIError) and error.orig is not None else error
    now = time.monotonic()
    if now - _last_logged >= LOG_EVERY_S:
        _last_logged = now
        log.warning("database unavailable: %s: %s", type(original).__name__, str(original).strip())
    if isinstance(original, psycopg.errors.QueryCanceled):
        cause = "a statement ran past the database statement timeout"
    elif isinstance(original, sa_exc.TimeoutError):
        cause = "no database connection came free in time"
    elif isinstance(original, sqlite3.OperationalError):
        cause = "the database is locked by another writer"
    else:
        cause = "the database cannot be reached"
    return StoreUnavailable(f"database unavailable: {cause}; retry shortly")


def raise_outages_as_unavailable(engine: Engine) -> None:
    """Makes the engine raise StoreUnavailable for outages (its pool must be an OutagePool for
    pool timeouts to be included). A failed pre-ping is left alone: the pool reconnects after it."""

    @event.listens_for(engine, "handle_error")
    def _translate(context: ExceptionContext) -> StoreUnavailable | None:
        if context.is_pre_ping:
            return None
        error = context.sqlalchemy_exception or context.original_exception
        if is_outage(error, disconnect=context.is_disconnect):
            return _unavailable(error)
        return None


class OutagePool(QueuePool):
    """QueuePool whose checkout timeout (every connection in use for pool_timeout seconds) is
    StoreUnavailable: the database is too busy to answer now, which a retry may find otherwise."""

    def _do_get(self):  # type: ignore[no-untyped-def]
        try:
            return super()._do_get()
        except sa_exc.TimeoutError as exc:
            raise _unavailable(exc) from exc
