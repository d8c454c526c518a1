"""Drives batch jobs to completion. Each pass reads every unfinished job's chunk tasks, refreshes
its progress counts, fails it when its endpoint cannot serve, and once every chunk has finished
asks a replica of the job's endpoint to assemble the single results object (in input order, each
failed input carrying its error). Finished jobs' temporary endpoints are then removed. All state
is in the database, so a restarted server (or another one) picks jobs up where they were."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from launch_server.domain.batch_jobs import BatchJob, BatchStatus, result_key
from launch_server.domain.endpoints import EndpointRepository, EndpointStatus
from launch_server.domain.live_endpoints import LiveEndpoints
from launch_server.domain.requests import AssemblePart, AssembleRequest, InferenceAnswer
from launch_server.domain.serving_ports import BatchJobProgress, ChunkTasks
from launch_server.domain.tasks import TaskState
from launch_server.serving.router import Router

log = logging.getLogger(__name__)
ASSEMBLE_TIMEOUT_S = 600.0


def _chunk_index(client_request_id: str) -> int:
    return int(client_request_id.removeprefix("chunk-"))


class BatchRunner:
    def __init__(
        self,
        jobs: BatchJobProgress,
        tasks: ChunkTasks,
        endpoints: EndpointRepository,
        live: LiveEndpoints,
        router: Router,
        *,
        wake_reconciler: Callable[[], None],
        poll_s: float = 0.5,
    ) -> None:
        self._jobs = jobs
        self._tasks = tasks
        self._endpoints = endpoints
        self._live = live
        self._router = router
        # A finished job's endpoint is marked for deletion: the reconciler tears it down at once
        # rather than at its next tick.
        self._wake_reconciler = wake_reconciler
        self._poll_s = poll_s
        self._wake = asyncio.Event()
        self._assembling: set[str] = set()

    def wake(self) -> None:
        """Asks for a pass now (a job was created or cancelled)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                await self.pass_once()
            except Exception:  # noqa: BLE001 - the loop must outlive any one failure
                log.exception("batch pass failed")
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_s)
            except TimeoutError:
                pass

    async def pass_once(self) -> None:
        for job in await asyncio.to_thread(self._jobs.unfinished):
            try:
                await self._advance(job)
            except Exception:  # noqa: BLE001 - one job's failure must not stall the others
                log.exception("advancing batch job %s failed", job.job_id)
        for job in await asyncio.to_thread(self._jobs.recently_finished_with_endpoint):
            await asyncio.to_thread(self._remove_endpoint, job)

    def _remove_endpoint(self, job: BatchJob) -> None:
        """Cancels what is left of a finished job's chunks and tears its endpoint down."""
        self._tasks.fail_endpoint_tasks(job.endpoint_id, f"cancelled: batch job {job.status.value.lower()}")
        self._endpoints.set_status(job.endpoint_id, EndpointStatus.DELETE_IN_PROGRESS, f"batch job {job.job_id} done")
        self._jobs.update(job.job_id, endpoint_id="")
        self._wake_reconciler()

    async def _advance(self, job: BatchJob) -> None:
        endpoint = await asyncio.to_thread(self._endpoints.get_by_id, job.endpoint_id)
        now = datetime.now(UTC)
        if endpoint is None:
            await asyncio.to_thread(self._jobs.finish, job.job_id, BatchStatus.FAILURE, "its workers were removed", now)
            return
        if endpoint.status is EndpointStatus.UPDATE_FAILED:
            reason = f"workers could not start: {endpoint.status_reason}"
            await asyncio.to_thread(self._jobs.finish, job.job_id, BatchStatus.FAILURE, reason, now)
            return
        chunks = await asyncio.to_thread(self._tasks.chunk_states, job.endpoint_id)
        n_chunks = -(-job.total_count // job.chunk_size)
        sizes = {i: min(job.chunk_size, job.total_count - i * job.chunk_size) for i in range(n_chunks)}
        succeeded = failed = 0
        parts: dict[int, AssemblePart] = {}
        started = False
        for client_request_id, state, result, traceback in chunks:
            index = _chunk_index(client_request_id)
            if state == TaskState.SUCCESS.value:
                summary = json.loads(result)
                succeeded += summary["succeeded"]
                failed += summary["failed"]
                parts[index] = AssemblePart(location=summary["location"])
            elif state in (TaskState.FAILURE.value, TaskState.CANCELLED.value):
                failed += sizes[index]
                parts[index] = AssemblePart(
                    error=f"the chunk holding this input failed: {traceback}", count=sizes[index]
                )
            if state != TaskState.PENDING.value:
                started = True
        values: dict = {"succeeded_count": succeeded, "failed_count": failed}
        if started and job.status is BatchStatus.PENDING:
            values.update(status=BatchStatus.RUNNING.value, status_reason="", started_at=now)
        if (succeeded, failed) != (job.succeeded_count, job.failed_count) or "status" in values:
            await asyncio.to_thread(self._jobs.update, job.job_id, **values)
        if len(parts) == n_chunks and job.job_id not in self._assembling:
            self._assembling.add(job.job_id)
            try:
                await self._assemble(job, [parts[i] for i in range(n_chunks)])
            finally:
                self._assembling.discard(job.job_id)

    async def _assemble(self, job: BatchJob, parts: list[AssemblePart]) -> None:
        live = self._live.route(job.endpoint_id)
        if live is None or not live.serving:
            return  # the next pass tries again once a worker is up
        handle = await self._router.handle(live.app_name)
        request = AssembleRequest(
            parts=tuple(parts),
            format=job.serialization_format,
            output_key=result_key(job.owner, job.job_id, job.serialization_format),
        )
        answer: InferenceAnswer = await asyncio.wait_for(handle.assemble.remote(request), ASSEMBLE_TIMEOUT_S)
        now = datetime.now(UTC)
        if not answer.succeeded:
            reason = f"writing the results failed: {answer.traceback}"
            await asyncio.to_thread(self._jobs.finish, job.job_id, BatchStatus.FAILURE, reason, now)
            return
        await asyncio.to_thread(
            self._jobs.finish, job.job_id, BatchStatus.SUCCESS, "", now, result_url=answer.result_url
        )
        log.info("batch job %s finished: %s", job.job_id, answer.result_url)
