"""How a submission's rows are written (the domain's TaskWriter), and the fast path that lets a
submission start at once on a worker with free capacity, skipping the queue's claim step.

Admitted rows are written already STARTED under that worker's lease, so durability is the same as
for a claimed task. When every task of a submission can start, the replica calls begin while the
rows are being written; a result is written only once `durable` gives the rows as committed, and
dropped when it gives None (a database error, or a repeated request_id whose earlier tasks
stand), so such a failed submit may have run the predict function once, which at-least-once
delivery allows. A submission that also queues tasks starts its admitted ones after the write, so
a submit refused for a full queue ran nothing.

A single task whose caller watches for its result (CreateAndWatchTask) that starts at once may
have its row held back for up to `hold_s`, when the endpoint's recent answers came within it
(answers_within): if the replica answers in time, the row is written once, already finished (one
write instead of two, and the submit answers with the result); otherwise it is written STARTED at
the end of the hold and finished later, as above. Either way the submit answers only after the
row is committed, and a crash before that leaves nothing to lose: the client got no answer and
retries with its request_id (at-least-once).

A repeated request_id (an SDK retry) starts nothing before its write, which answers the earlier
tasks; a retry that arrives while the earlier submission is still being written (held for its
answer, say) waits for that write. The asyncio futures of all this live here and in the
dispatcher, never in the domain."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from launch_server.domain.endpoints import Endpoint
from launch_server.domain.tasks import Outcome, Task, TaskRepository, finished_task, started_task


class Admission(Protocol):
    """What the dispatcher offers a submission: free call slots, taken before the rows are
    written, and the calls themselves."""

    def reserve(self, endpoint_id: str, count: int) -> tuple[int, str, float]:
        """How many of `count` tasks may start now, the worker id and the lease length."""
        ...

    def start(
        self, endpoint_id: str, tasks: list[Task], reserved: int, durable: asyncio.Future[list[Task] | None]
    ) -> list[asyncio.Future[Outcome | None]]:
        """Runs `tasks` (the first `reserved` of a submission) and gives back the reservations it
        does not use. Returns each task's answer to come: its Outcome, or None when the call failed
        (the task is then retried through its stored row)."""
        ...

    def answers_within(self, endpoint_id: str, hold_s: float) -> bool:
        """Do this endpoint's replicas usually answer within `hold_s` (worth holding a row back)?"""
        ...


class AdmittingWriter:
    """The TaskWriter the server uses. Without `admission` every row waits in the queue and
    `wake` tells the dispatcher; with it, tasks that can start at once do (see the module's
    docstring), and a watched single task's row may be held back for up to `hold_s`."""

    def __init__(
        self,
        repo: TaskRepository,
        wake: Callable[[str], object],
        admission: Admission | None = None,
        hold_s: float = 0.0,
    ) -> None:
        self._repo = repo
        self._wake = wake
        self._admission = admission
        self._hold_s = hold_s
        self._writing: dict[tuple[str, str], asyncio.Future[list[Task]]] = {}  # by (owner, first request_id)

    async def store(self, endpoint: Endpoint, tasks: list[Task], first_use: bool, watched: bool) -> list[Task]:
        key = (tasks[0].owner, tasks[0].request_id) if tasks[0].request_id else None
        if not first_use and key is not None and (earlier := self._writing.get(key)) is not None:
            await asyncio.wait([earlier])
        tasks = list(tasks)
        admission, endpoint_id = self._admission, endpoint.endpoint_id
        reserved = 0
        durable: asyncio.Future[list[Task] | None] = asyncio.get_running_loop().create_future()
        if admission is not None:
            reserved, worker, lease_s = admission.reserve(endpoint_id, len(tasks))
            tasks[:reserved] = [started_task(t, worker, lease_s, t.created_at) for t in tasks[:reserved]]
        # When every task starts at once, the replica calls start while the rows are written (no
        # queue cap applies, so only a repeated request_id or a database error can refuse them).
        # Otherwise they start after the write, so a submit refused for a full queue ran nothing.
        early = admission is not None and reserved == len(tasks) and first_use
        answers = admission.start(endpoint_id, tasks, reserved, durable) if admission is not None and early else []
        held = watched and len(answers) == 1 and admission is not None
        hold_s = self._hold_s if held and admission.answers_within(endpoint_id, self._hold_s) else 0.0

        async def write() -> list[Task]:
            """Holds a watched single task's row back for its answer, then writes; whatever
            happens, `durable` is settled and admitted tasks are started or given back."""
            rows, stored = tasks, None
            try:
                if hold_s:
                    await asyncio.wait(answers, timeout=hold_s)  # never cancels the call
                    outcome = answers[0].result() if answers[0].done() else None
                    if outcome is not None:
                        rows = [finished_task(tasks[0], outcome, datetime.now(UTC))]
                stored = self._repo.add_without_waiting(rows)
                if stored is None:
                    stored = await asyncio.to_thread(self._repo.add_many, rows, endpoint.settings.max_queue_size)
                return stored
            finally:
                wrote = stored is rows  # these very rows, not an error or a repeated request_id's tasks
                if not durable.done():
                    durable.set_result(rows if wrote else None)
                if admission is not None and not early:
                    admission.start(endpoint_id, rows[:reserved] if wrote else [], reserved, durable)
                if reserved < len(rows) and stored is not None:
                    self._wake(endpoint_id)  # the rest waits in the queue: wake the dispatcher

        # The write is its own task, which a cancelled RPC cannot stop, so `durable` is settled by
        # the write itself, never by the cancellation.
        writing = asyncio.ensure_future(write())
        if key is not None:
            self._writing[key] = writing
            writing.add_done_callback(functools.partial(self._written, key))
        return await asyncio.shield(writing)

    def _written(self, key: tuple[str, str], done: asyncio.Future[list[Task]]) -> None:
        if self._writing.get(key) is done:
            del self._writing[key]
