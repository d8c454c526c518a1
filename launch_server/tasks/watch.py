"""Fan-out of task changes to WatchTasks streams. Changes this server writes are published at
once; changes written by other servers sharing the database are found by polling the watched
ids every `poll_s` (one query for all watchers), so a watch on any server sees every result."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from launch_server.domain.tasks import Task
from launch_server.store.task_repository import SqlTaskRepository

log = logging.getLogger(__name__)


class WatchHub:
    def __init__(self, repo: SqlTaskRepository, poll_s: float = 0.25) -> None:
        self._repo = repo
        self._poll_s = poll_s
        self._subscribers: dict[str, set[asyncio.Queue[Task]]] = {}

    def subscribe(self, task_ids: list[str]) -> asyncio.Queue[Task]:
        queue: asyncio.Queue[Task] = asyncio.Queue()
        for task_id in task_ids:
            self._subscribers.setdefault(task_id, set()).add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Task], task_ids: list[str]) -> None:
        for task_id in task_ids:
            queues = self._subscribers.get(task_id)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._subscribers[task_id]

    def publish(self, tasks: list[Task]) -> None:
        for task in tasks:
            for queue in self._subscribers.get(task.task_id, ()):
                queue.put_nowait(task)

    async def run(self, stop: asyncio.Event) -> None:
        since = datetime.now(UTC)
        polls = 0
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._poll_s)
            except TimeoutError:
                pass
            ids = list(self._subscribers)
            if not ids:
                since = datetime.now(UTC)
                continue
            started = datetime.now(UTC)
            polls += 1
            # Usually only rows changed since the last poll (with overlap); every 20th poll (5 s), all
            # watched rows, because a row's updated_at is stamped before its commit, which on a
            # busy database can land after the window. Watchers ignore repeated states.
            full = polls % 20 == 0
            try:
                if full:
                    changed = await asyncio.to_thread(self._repo.get_by_ids, ids)
                else:
                    # One indexed query for everything changed lately, whoever watches it.
                    changed = await asyncio.to_thread(self._repo.changed_since, since - timedelta(seconds=0.5))
            except Exception:  # noqa: BLE001 - keep watching through a transient database error
                log.exception("watch poll failed")
                continue
            since = started
            self.publish(changed)
