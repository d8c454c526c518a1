"""What the task queue's loops (the dispatcher, the watch hub, the callback sender) need from the
task store, as small interfaces with only the calls each one makes, and the values those calls
hand back. The loops are typed against these so that task_queue/ never imports the store; the
store's SqlTaskRepository satisfies them structurally, and tests may implement them in memory.
Every method blocks (a database round trip): callers run them in a worker thread."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from launch_server.domain.requests import TaskWork
from launch_server.domain.tasks import Outcome, Task


@dataclass(frozen=True)
class ClaimedTask:
    """A task a worker holds under its lease, with the work its replica is asked to do."""

    task_id: str
    work: TaskWork
    attempts: int
    task: Task | None = None  # the row as claimed, so finishing it needs no read-back


@dataclass(frozen=True)
class QueueDepth:
    """An endpoint's tasks waiting for a replica: how many, and when the oldest was queued."""

    queued: int
    oldest_created_at: datetime


class QueueDepths(Protocol):
    """The queue figures' side (task_queue/queue_figures.py): one read-only count per pass."""

    def queue_depths(self, endpoint_ids: list[str]) -> dict[str, QueueDepth]:
        """Pending tasks per endpoint; endpoints with none are left out."""
        ...


@dataclass(frozen=True)
class CallbackJob:
    """A finished task whose callback is due, claimed for one attempt (`attempts` made before)."""

    task: Task
    url: str
    attempts: int


class TaskLeases(Protocol):
    """The dispatcher's side: claim pending tasks under a lease, keep the lease, record the end."""

    def pending_counts(self, endpoint_ids: list[str]) -> dict[str, int]:
        """Pending tasks per endpoint (endpoints with none may be left out); read-only."""
        ...

    def claim(self, endpoint_id: str, limit: int, worker: str, lease_s: float) -> list[ClaimedTask]:
        """Up to `limit` of the endpoint's oldest pending tasks, now STARTED under `worker`'s lease."""
        ...

    def complete(self, outcomes: list[Outcome], worker: str, known: dict[str, Task] | None = None) -> list[Task]:
        """Writes the outcomes of tasks `worker` still holds; the tasks it finished. `known` holds
        rows as claimed, so those need no read-back."""
        ...

    def release(
        self, task_ids: list[str], worker: str, reason: str, max_attempts: int, refund: bool = False
    ) -> list[Task]:
        """Puts tasks back in the queue, or fails those out of attempts (returned); with `refund`
        the attempt does not count."""
        ...

    def extend_leases(self, task_ids: list[str], worker: str, lease_s: float) -> list[str]:
        """Renews `worker`'s leases; the ids among `task_ids` that were cancelled meanwhile."""
        ...


class ChangedTasks(Protocol):
    """The watch hub's side: find rows changed by any server sharing the database."""

    def get_by_ids(self, task_ids: list[str], since: datetime | None = None) -> list[Task]:
        """Any owner's tasks among `task_ids`, only those changed after `since` when given."""
        ...

    def changed_since(self, since: datetime) -> list[Task]:
        """Every task changed after `since`."""
        ...


class CallbackQueue(Protocol):
    """The callback sender's side: claim due callbacks, record each attempt's end."""

    def due_callbacks(self, limit: int, hold_s: float) -> list[CallbackJob]:
        """Up to `limit` due callbacks, each held from other senders for `hold_s`."""
        ...

    def callback_done(self, task_id: str, ok: bool, error: str, retry_in_s: float | None) -> None:
        """Records an attempt: delivered, failed for good (`retry_in_s` None), or due again later."""
        ...
