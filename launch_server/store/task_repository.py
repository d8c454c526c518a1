"""SQL repository for the durable task queue. Claims use SELECT ... FOR UPDATE SKIP LOCKED on
PostgreSQL, so several servers sharing one database claim each task once; SQLite serializes
writers (BEGIN IMMEDIATE), which gives the same guarantee for one file."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, bindparam, case, func, insert, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, delete, select

from launch_server.domain.errors import ResourceExhausted
from launch_server.domain.requests import task_work_from_json
from launch_server.domain.task_queue_ports import CallbackJob, ClaimedTask, QueueDepth
from launch_server.domain.tasks import TERMINAL, Outcome, Task, TaskState, finished_task
from launch_server.store.db import writer
from launch_server.store.repositories import as_utc
from launch_server.store.sqlite_nonblocking import NonBlockingInsert
from launch_server.store.tables import TaskRow

IN_CHUNK = 500
TASKS = TaskRow.__table__


def _now() -> datetime:
    return datetime.now(UTC)


def _callback_due(now: datetime) -> dict:
    """Values that schedule the callback hook for a task that just finished (if it has a URL)."""
    return {
        "callback_state": case((TASKS.c.callback_url != "", "PENDING"), else_="NONE"),
        "next_callback_at": now,
    }


def _row_values(task: Task) -> dict:
    """A new task's full row, for a Core INSERT (the ORM's defaults do not apply there). A task
    stored already finished (answered before its row was written) has its callback due at once."""
    callback_due = task.terminal and bool(task.callback_url)
    return {
        "task_id": task.task_id,
        "owner": task.owner,
        "endpoint_id": task.endpoint_id,
        "endpoint_name": task.endpoint_name,
        "state": task.state.value,
        "input_json": task.input_json,
        "callback_url": task.callback_url,
        "client_request_id": task.client_request_id,
        "request_id": task.request_id,
        "result": task.result,
        "result_url": task.result_url,
        "traceback": task.traceback,
        "attempts": task.attempts,
        "lease_owner": task.lease_owner,
        "lease_expires_at": task.lease_expires_at,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
        "expires_at": task.expires_at,
        "callback_state": "PENDING" if callback_due else "NONE",
        "callback_attempts": 0,
        "callback_error": "",
        "next_callback_at": task.finished_at if callback_due else None,
    }


def _opt(value: datetime | None) -> datetime | None:
    return as_utc(value) if value else None


def to_task(row: TaskRow) -> Task:
    return Task(
        task_id=row.task_id,
        owner=row.owner,
        endpoint_id=row.endpoint_id,
        endpoint_name=row.endpoint_name,
        state=TaskState(row.state),
        input_json=row.input_json,
        callback_url=row.callback_url,
        client_request_id=row.client_request_id,
        result=row.result,
        result_url=row.result_url,
        traceback=row.traceback,
        attempts=row.attempts,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        started_at=_opt(row.started_at),
        finished_at=_opt(row.finished_at),
        expires_at=as_utc(row.expires_at),
        request_id=row.request_id,
    )


class SqlTaskRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = writer(engine)
        self._skip_locked = engine.dialect.name == "postgresql"
        self._without_waiting = NonBlockingInsert(engine, TASKS)

    # ---- submission and reads -------------------------------------------------------------------

    def add_many(self, tasks: list[Task], max_pending: int) -> list[Task]:
        """Stores the tasks in one transaction, or returns the earlier ones of a repeated request_id.

        Core statements rather than the ORM: this write is on every async request's path, and the
        ORM's unit of work costs several times the INSERT itself. The queue cap is checked after
        the INSERT, in the same transaction, so a repeated request_id is answered even when the
        queue is full now."""
        first = tasks[0]
        queued = sum(1 for t in tasks if t.state is TaskState.PENDING)
        try:
            with self._writer.begin() as connection:
                connection.execute(insert(TASKS), [_row_values(t) for t in tasks])
                if queued:  # tasks admitted straight to a worker never wait in the queue
                    pending = connection.execute(
                        select(func.count())
                        .select_from(TASKS)
                        .where(TASKS.c.endpoint_id == first.endpoint_id, TASKS.c.state == TaskState.PENDING.value)
                    ).scalar_one()
                    if pending > max_pending:  # raising here rolls the INSERT back
                        raise ResourceExhausted(
                            f"the queue of model endpoint {first.endpoint_name!r} is full: {pending - queued} tasks "
                            f"waiting, cap {max_pending} (max_queue_size); retry later"
                        )
        except IntegrityError:
            if first.request_id:
                return self._by_request_ids(first.owner, [t.request_id or "" for t in tasks])
            raise
        return tasks

    def add_without_waiting(self, tasks: list[Task]) -> list[Task] | None:
        """Stores tasks that wait in no queue (started, or finished, at once) on the calling
        thread, but only when that cannot wait on a lock (see sqlite_nonblocking); None when it did not
        (PostgreSQL, the lock held, a repeated request_id...): use add_many in a thread then."""
        if any(t.state is TaskState.PENDING for t in tasks):
            return None  # the queue cap needs a count in the same transaction: add_many does that
        return tasks if self._without_waiting.insert([_row_values(t) for t in tasks]) else None

    def checkpoint(self) -> int:
        """Folds SQLite's write-ahead log into the database file (for add_without_waiting's connection, which
        never does it itself); a no-op on PostgreSQL. Blocking: for a worker thread."""
        return self._without_waiting.checkpoint()

    def close(self) -> None:
        self._without_waiting.close()

    def _by_request_ids(self, owner: str, request_ids: list[str]) -> list[Task]:
        """The earlier tasks of a repeated request: those stored under exactly the ids this retry
        used ("<request_id>:<index>"), in its order. Equality, never a pattern or a range: a request
        id may hold any character (LIKE's '%' and '_', ':' itself), SQLite's LIKE ignores case and a
        PostgreSQL range follows the column's collation, while `=` is exact and case-sensitive on
        both and uses the (owner, request_id) unique index."""
        order = {request_id: index for index, request_id in enumerate(request_ids)}
        found: list[Task] = []
        with Session(self._engine) as session:
            for start in range(0, len(request_ids), IN_CHUNK):
                chunk = request_ids[start : start + IN_CHUNK]
                rows = session.exec(select(TaskRow).where(TaskRow.owner == owner, TaskRow.request_id.in_(chunk)))
                found.extend(to_task(r) for r in rows)
        return sorted(found, key=lambda t: order[t.request_id or ""])

    def get_many(self, owner: str, task_ids: list[str]) -> list[Task]:
        found: list[Task] = []
        with Session(self._engine) as session:
            for start in range(0, len(task_ids), IN_CHUNK):
                chunk = task_ids[start : start + IN_CHUNK]
                rows = session.exec(select(TaskRow).where(TaskRow.owner == owner, TaskRow.task_id.in_(chunk)))
                found.extend(to_task(r) for r in rows)
        return found

    def get_by_ids(self, task_ids: list[str], since: datetime | None = None) -> list[Task]:
        """Any owner's tasks (the watch hub filters per watcher), optionally only those changed."""
        found: list[Task] = []
        with Session(self._engine) as session:
            for start in range(0, len(task_ids), IN_CHUNK):
                query = select(TaskRow).where(TaskRow.task_id.in_(task_ids[start : start + IN_CHUNK]))
                if since is not None:
                    query = query.where(TaskRow.updated_at > since)
                found.extend(to_task(r) for r in session.exec(query))
        return found

    def changed_since(self, since: datetime, limit: int = 50_000) -> list[Task]:
        """Every task changed after `since` (the watch hub keeps those someone watches)."""
        with Session(self._engine) as session:
            rows = session.exec(select(TaskRow).where(TaskRow.updated_at > since).limit(limit))
            return [to_task(r) for r in rows]

    def cancel(self, owner: str, task_id: str) -> Task | None:
        now = _now()
        with Session(self._writer) as session:
            row = session.exec(
                select(TaskRow).where(TaskRow.owner == owner, TaskRow.task_id == task_id).with_for_update()
            ).first()
            if row is None:
                return None
            if TaskState(row.state) not in TERMINAL:
                row.state = TaskState.CANCELLED.value
                row.traceback = "cancelled by the owner"
                row.finished_at = now
                row.updated_at = now
                row.lease_owner = None
                session.add(row)
                session.commit()
                session.refresh(row)
            return to_task(row)

    # ---- the dispatcher's side --------------------------------------------------------------------

    def pending_counts(self, endpoint_ids: list[str]) -> dict[str, int]:
        if not endpoint_ids:
            return {}
        with Session(self._engine) as session:
            rows = session.exec(
                select(TaskRow.endpoint_id, func.count())
                .where(TaskRow.state == TaskState.PENDING.value, TaskRow.endpoint_id.in_(endpoint_ids))
                .group_by(TaskRow.endpoint_id)
            ).all()
        return {endpoint_id: int(count) for endpoint_id, count in rows}

    def queue_depths(self, endpoint_ids: list[str]) -> dict[str, QueueDepth]:
        """One grouped read over ix_tasks_endpoint_state_created (count and oldest per endpoint)."""
        depths: dict[str, QueueDepth] = {}
        for start in range(0, len(endpoint_ids), IN_CHUNK):
            chunk = endpoint_ids[start : start + IN_CHUNK]
            with Session(self._engine) as session:
                rows = session.exec(
                    select(TaskRow.endpoint_id, func.count(), func.min(TaskRow.created_at))
                    .where(TaskRow.state == TaskState.PENDING.value, TaskRow.endpoint_id.in_(chunk))
                    .group_by(TaskRow.endpoint_id)
                ).all()
            for endpoint_id, count, oldest in rows:
                depths[endpoint_id] = QueueDepth(int(count), as_utc(oldest))
        return depths

    def claim(self, endpoint_id: str, limit: int, worker: str, lease_s: float) -> list[ClaimedTask]:
        """Moves up to `limit` of the oldest pending tasks to STARTED under this worker's lease."""
        now = _now()
        with Session(self._writer) as session:
            query = (
                select(TaskRow)
                .where(TaskRow.endpoint_id == endpoint_id, TaskRow.state == TaskState.PENDING.value)
                .order_by(TaskRow.created_at)
                .limit(limit)
            )
            if self._skip_locked:
                query = query.with_for_update(skip_locked=True)
            rows = [to_task(r) for r in session.exec(query).all()]
            if not rows:
                return []
            ids = [t.task_id for t in rows]
            session.exec(
                update(TaskRow)
                .where(TaskRow.task_id.in_(ids))
                .values(
                    state=TaskState.STARTED.value,
                    lease_owner=worker,
                    lease_expires_at=now + timedelta(seconds=lease_s),
                    attempts=TaskRow.attempts + 1,
                    started_at=func.coalesce(TaskRow.started_at, now),
                    updated_at=now,
                )
            )
            session.commit()
        until = now + timedelta(seconds=lease_s)
        return [
            ClaimedTask(
                t.task_id,
                task_work_from_json(t.input_json),
                t.attempts + 1,
                dataclasses.replace(
                    t,
                    state=TaskState.STARTED,
                    attempts=t.attempts + 1,
                    started_at=t.started_at or now,
                    lease_owner=worker,
                    lease_expires_at=until,
                ),
            )
            for t in rows
        ]

    def complete(self, outcomes: list[Outcome], worker: str, known: dict[str, Task] | None = None) -> list[Task]:
        """Writes results for tasks this worker still holds (a cancelled or taken-over task is
        left alone) and schedules callbacks; returns the finished tasks (built from `known` rows
        when given, else read back)."""
        now = _now()
        finish = (
            update(TASKS)
            .values(
                finished_at=now,
                updated_at=now,
                lease_owner=None,
                lease_expires_at=None,
                **_callback_due(now),
            )
            .where(TASKS.c.state == TaskState.STARTED.value, TASKS.c.lease_owner == worker)
        )
        with self._writer.begin() as connection:
            if len(outcomes) == 1:  # one statement: the WHERE clause is the "still held" check
                [o] = outcomes
                written = connection.execute(
                    finish.where(TASKS.c.task_id == o.task_id).values(
                        state=o.state.value, result=o.result, result_url=o.result_url, traceback=o.traceback
                    )
                )
                done = [o.task_id] if written.rowcount == 1 else []
            else:
                # Which of these this worker still holds, locked (FOR UPDATE on PostgreSQL; SQLite's
                # BEGIN IMMEDIATE already excludes other writers) so a cancel cannot land between
                # this read and the UPDATE; then one executemany UPDATE for all of them.
                held = set(
                    connection.execute(
                        select(TASKS.c.task_id)
                        .where(
                            TASKS.c.task_id.in_([o.task_id for o in outcomes]),
                            TASKS.c.state == TaskState.STARTED.value,
                            TASKS.c.lease_owner == worker,
                        )
                        .with_for_update()
                    ).scalars()
                )
                done = [o.task_id for o in outcomes if o.task_id in held]
                if done:
                    connection.execute(
                        finish.where(TASKS.c.task_id == bindparam("b_task_id")).values(
                            state=bindparam("b_state"),
                            result=bindparam("b_result"),
                            result_url=bindparam("b_result_url"),
                            traceback=bindparam("b_traceback"),
                        ),
                        [
                            {
                                "b_task_id": o.task_id,
                                "b_state": o.state.value,
                                "b_result": o.result,
                                "b_result_url": o.result_url,
                                "b_traceback": o.traceback,
                            }
                            for o in outcomes
                            if o.task_id in held
                        ],
                    )
        if not done:
            return []
        if known is not None and all(task_id in known for task_id in done):
            by_id = {o.task_id: o for o in outcomes}
            return [finished_task(known[task_id], by_id[task_id], now) for task_id in done]
        return self.get_by_ids(done)

    def release(
        self, task_ids: list[str], worker: str, reason: str, max_attempts: int, refund: bool = False
    ) -> list[Task]:
        """Puts tasks whose worker died back in the queue, or fails those out of attempts. With
        `refund` (the whole Ray cluster was gone, not the task's fault) the attempt does not count."""
        now = _now()
        with Session(self._writer) as session:
            held = and_(
                TaskRow.task_id.in_(task_ids),
                TaskRow.state == TaskState.STARTED.value,
                TaskRow.lease_owner == worker,
            )
            if refund:
                session.exec(update(TaskRow).where(held, TaskRow.attempts > 0).values(attempts=TaskRow.attempts - 1))
            session.exec(
                update(TaskRow)
                .where(held, TaskRow.attempts >= max_attempts)
                .values(
                    state=TaskState.FAILURE.value,
                    traceback=f"gave up after {max_attempts} attempts: {reason}",
                    finished_at=now,
                    updated_at=now,
                    lease_owner=None,
                    **_callback_due(now),
                )
            )
            session.exec(
                update(TaskRow)
                .where(held, TaskRow.attempts < max_attempts)
                .values(state=TaskState.PENDING.value, lease_owner=None, lease_expires_at=None, updated_at=now)
            )
            session.commit()
        return [t for t in self.get_by_ids(task_ids) if t.terminal]

    def extend_leases(self, task_ids: list[str], worker: str, lease_s: float) -> list[str]:
        """Renews this worker's leases; returns the ids among `task_ids` that were cancelled (the
        cancel may have come through another server), so the worker stops their calls."""
        if not task_ids:
            return []
        until = _now() + timedelta(seconds=lease_s)
        cancelled: list[str] = []
        with Session(self._writer) as session:
            for start in range(0, len(task_ids), IN_CHUNK):
                chunk = task_ids[start : start + IN_CHUNK]
                session.exec(
                    update(TaskRow)
                    .where(TaskRow.task_id.in_(chunk), TaskRow.lease_owner == worker)
                    .values(lease_expires_at=until)
                )
                cancelled += session.exec(
                    select(TaskRow.task_id).where(
                        TaskRow.task_id.in_(chunk), TaskRow.state == TaskState.CANCELLED.value
                    )
                ).all()
            session.commit()
        return cancelled

    # ---- maintenance -------------------------------------------------------------------------------

    def reclaim_expired_leases(self, max_attempts: int) -> int:
        """Tasks whose server died (lease passed): back to PENDING, or FAILURE when out of attempts."""
        now = _now()
        with Session(self._writer) as session:
            expired = and_(TaskRow.state == TaskState.STARTED.value, TaskRow.lease_expires_at < now)
            failed = session.exec(
                update(TaskRow)
                .where(expired, TaskRow.attempts >= max_attempts)
                .values(
                    state=TaskState.FAILURE.value,
                    traceback=f"gave up after {max_attempts} attempts: the server running it stopped",
                    finished_at=now,
                    updated_at=now,
                    lease_owner=None,
                    **_callback_due(now),
                )
            ).rowcount
            requeued = session.exec(
                update(TaskRow)
                .where(expired)
                .values(state=TaskState.PENDING.value, lease_owner=None, lease_expires_at=None, updated_at=now)
            ).rowcount
            session.commit()
        return int(failed or 0) + int(requeued or 0)

    def expire_pending(self) -> int:
        now = _now()
        with Session(self._writer) as session:
            count = session.exec(
                update(TaskRow)
                .where(TaskRow.state == TaskState.PENDING.value, TaskRow.expires_at < now)
                .values(
                    state=TaskState.FAILURE.value,
                    traceback="expired: not started before the endpoint's task_expiry_seconds",
                    finished_at=now,
                    updated_at=now,
                    **_callback_due(now),
                )
            ).rowcount
            session.commit()
        return int(count or 0)

    def fail_endpoint_tasks(self, endpoint_id: str, reason: str) -> int:
        now = _now()
        with Session(self._writer) as session:
            count = session.exec(
                update(TaskRow)
                .where(
                    TaskRow.endpoint_id == endpoint_id,
                    TaskRow.state.in_([TaskState.PENDING.value, TaskState.STARTED.value]),
                )
                .values(state=TaskState.CANCELLED.value, traceback=reason, finished_at=now, updated_at=now)
            ).rowcount
            session.commit()
        return int(count or 0)

    def purge_finished(self, older_than: datetime) -> list[str]:
        """Deletes finished tasks past retention; returns their stored result URLs to delete."""
        with Session(self._writer) as session:
            old = and_(TaskRow.state.in_([s.value for s in TERMINAL]), TaskRow.finished_at < older_than)
            urls = [u for u in session.exec(select(TaskRow.result_url).where(old)).all() if u]
            session.exec(delete(TaskRow).where(old))
            session.commit()
        return urls

    # ---- callbacks ---------------------------------------------------------------------------------

    def due_callbacks(self, limit: int, hold_s: float) -> list[CallbackJob]:
        """Claims callbacks due now by pushing their next time out (at-least-once delivery)."""
        now = _now()
        with Session(self._engine) as session:  # read-only check first: no write lock when idle
            due = (TaskRow.callback_state == "PENDING", TaskRow.next_callback_at <= now)
            if session.exec(select(TaskRow.task_id).where(*due).limit(1)).first() is None:
                return []
        with Session(self._writer) as session:
            query = (
                select(TaskRow)
                .where(TaskRow.callback_state == "PENDING", TaskRow.next_callback_at <= now)
                .order_by(TaskRow.next_callback_at)
                .limit(limit)
            )
            if self._skip_locked:
                query = query.with_for_update(skip_locked=True)
            rows = session.exec(query).all()
            jobs = [CallbackJob(to_task(r), r.callback_url, r.callback_attempts) for r in rows]
            for row in rows:
                row.next_callback_at = now + timedelta(seconds=hold_s)
                session.add(row)
            session.commit()
        return jobs

    def callback_done(self, task_id: str, ok: bool, error: str, retry_in_s: float | None) -> None:
        with Session(self._writer) as session:
            row = session.get(TaskRow, task_id)
            if row is None:
                return
            row.callback_attempts += 1
            row.callback_error = error
            if ok:
                row.callback_state, row.next_callback_at = "DONE", None
            elif retry_in_s is None:
                row.callback_state, row.next_callback_at = "FAILED", None
            else:
                row.next_callback_at = _now() + timedelta(seconds=retry_in_s)
            session.add(row)
            session.commit()

    def chunk_states(self, endpoint_id: str) -> list[tuple[str, str, str, str]]:
        """(client_request_id, state, result, traceback) of every task on an endpoint: a batch
        job's chunks and their summaries."""
        with Session(self._engine) as session:
            rows = session.exec(
                select(TaskRow.client_request_id, TaskRow.state, TaskRow.result, TaskRow.traceback).where(
                    TaskRow.endpoint_id == endpoint_id
                )
            ).all()
        return [(r[0], r[1], r[2], r[3]) for r in rows]
