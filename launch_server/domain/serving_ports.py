"""What the serving loops (the reconciler and the batch runner) need from the store, as small
interfaces: they run in the server's background, read and write rows the domain services also
use, and are typed against these so that serving/ and the batch runner never import the store.
The store's repositories implement them; tests may implement them in memory."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from launch_server.domain.batch_jobs import BatchJob, BatchStatus
from launch_server.domain.entities import Bundle


class BundleSource(Protocol):
    """Reads the bundle an endpoint runs, by the id its row holds."""

    def get_by_id(self, bundle_id: str) -> Bundle | None: ...


class BatchJobProgress(Protocol):
    """A batch job's row, as the runner drives it to completion."""

    def unfinished(self) -> list[BatchJob]: ...

    def recently_finished_with_endpoint(self) -> list[BatchJob]:
        """Finished jobs whose temporary endpoint may still need removing."""
        ...

    def update(self, job_id: str, **values: object) -> None: ...

    def finish(self, job_id: str, status: BatchStatus, reason: str, when: datetime, **values: object) -> bool:
        """Moves an unfinished job to a final status; False when it was already final (cancelled)."""
        ...


class ChunkTasks(Protocol):
    """A batch job's chunks: the tasks queued on its endpoint."""

    def chunk_states(self, endpoint_id: str) -> list[tuple[str, str, str, str]]:
        """(client_request_id, state, result, traceback) of every task on the endpoint."""
        ...

    def fail_endpoint_tasks(self, endpoint_id: str, reason: str) -> int:
        """Cancels the endpoint's unfinished tasks with `reason`; returns how many."""
        ...
