"""Fan-out of task changes to WatchTasks streams. Changes this server writes are published at
once; changes written by other servers sharing the database are found by polling (one query for
all watchers), so a watch on any server sees every result.

Bounded: each stream holds a Watcher, which keeps only the newest unseen state of each task it
watches (a watcher needs each task's latest state, not every step), so a client that stops
reading costs at most one Task per watched id however often the tasks change. A task that
reached a final state is dropped from its watchers' subscriptions as soon as it is delivered to
them, so the polls only ever concern tasks that can still change.

Polls: every `poll_s`, the rows changed since the previous poll (with a small overlap); every
BACKSTOP_EVERY-th poll, the watched rows changed within a wide window. The wide pass exists
because a row's updated_at is stamped before its commit, which on a busy database can land after
the short window has moved on: a row committed up to BACKSTOP_OVERLAP_S after its stamp is still
found (task writes are single short transactions, far below that). It asks only for rows that
changed (by primary key and updated_at), never a full reload of every watched id."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from launch_server.domain.task_queue_ports import ChangedTasks
from launch_server.domain.tasks import Task

log = logging.getLogger(__name__)

SHORT_OVERLAP_S = 0.5
BACKSTOP_EVERY = 20  # polls (5 s at the default poll_s)
BACKSTOP_OVERLAP_S = 60.0


def supersedes(new: Task, old: Task) -> bool:
    """Whether `new` is a later state of the task than `old`: a final state is never replaced
    by a non-final one (a poll may read a row just before this server published its result);
    otherwise the later write wins."""
    if old.terminal != new.terminal:
        return new.terminal
    return new.updated_at >= old.updated_at


class Watcher:
    """One stream's pending changes: task id -> newest unseen state."""

    def __init__(self) -> None:
        self._pending: dict[str, Task] = {}
        self._ready = asyncio.Event()

    def offer(self, task: Task) -> None:
        current = self._pending.get(task.task_id)
        if current is None or supersedes(task, current):
            self._pending[task.task_id] = task
            self._ready.set()

    async def changes(self) -> list[Task]:
        """Waits for at least one change, then takes every pending one."""
        await self._ready.wait()
        self._ready.clear()
        pending, self._pending = self._pending, {}
        return list(pending.values())

    def __len__(self) -> int:
        return len(self._pending)


class WatchHub:
    def __init__(self, repo: ChangedTasks, poll_s: float = 0.25) -> None:
        self._repo = repo
        self._poll_s = poll_s
        self._subscribers: dict[str, set[Watcher]] = {}

    def subscribe(self, task_ids: Iterable[str]) -> Watcher:
        watcher = Watcher()
        for task_id in task_ids:
            self._subscribers.setdefault(task_id, set()).add(watcher)
        return watcher

    def unsubscribe(self, watcher: Watcher, task_ids: Iterable[str]) -> None:
        for task_id in task_ids:
            watchers = self._subscribers.get(task_id)
            if watchers is not None:
                watchers.discard(watcher)
                if not watchers:
                    del self._subscribers[task_id]

    @property
    def watched_ids(self) -> int:
        return len(self._subscribers)

    def publish(self, tasks: Iterable[Task]) -> None:
        for task in tasks:
            watchers = self._subscribers.get(task.task_id)
            if not watchers:
                continue
            for watcher in watchers:
                watcher.offer(task)
            if task.terminal:  # final: nothing more to deliver about it to anyone
                del self._subscribers[task.task_id]

    async def run(self, stop: asyncio.Event) -> None:
        since = backstop_since = datetime.now(UTC)
        polls = 0
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._poll_s)
            except TimeoutError:
                pass
            ids = list(self._subscribers)
            started = datetime.now(UTC)
            if not ids:
                since = backstop_since = started
                continue
            polls += 1
            backstop = polls % BACKSTOP_EVERY == 0
            try:
                if backstop:
                    window = backstop_since - timedelta(seconds=BACKSTOP_OVERLAP_S)
                    changed = await asyncio.to_thread(self._repo.get_by_ids, ids, window)
                else:
                    # One indexed query for everything changed lately, whoever watches it.
                    window = since - timedelta(seconds=SHORT_OVERLAP_S)
                    changed = await asyncio.to_thread(self._repo.changed_since, window)
            except Exception:  # noqa: BLE001 - keep watching through a transient database error
                log.exception("watch poll failed")
                continue
            since = started
            if backstop:
                backstop_since = started
            self.publish(changed)
