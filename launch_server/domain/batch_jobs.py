"""Batch jobs: a bundle run over many inputs. A job's inputs are cut into chunks (the grain of
durability, retry and progress); each chunk is one task on a temporary async endpoint that the
job owns, so chunks inherit the task queue's leases, retries and restart behaviour. This module
validates and records jobs; task_queue/batch_runner.py drives them to completion."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Protocol

from launch_server.domain.batch_inputs import MAX_INPUTS
from launch_server.domain.endpoints import (
    BATCH_ENDPOINT_PREFIX,
    MAX_CALLS_IN_FLIGHT,
    MAX_CPUS,
    MAX_GPUS,
    MAX_WORKERS,
    EndpointService,
    EndpointSettings,
    EndpointType,
)
from launch_server.domain.entities import Page
from launch_server.domain.errors import InvalidArgument, NotFound
from launch_server.domain.ownership import results_prefix
from launch_server.domain.ports import BundleRepository
from launch_server.domain.requests import ChunkRequest, InferenceRequest
from launch_server.domain.resources import accelerator_for, parse_memory
from launch_server.domain.tasks import TaskInput, TaskService
from launch_server.domain.validation import (
    validate_id,
    validate_labels,
    validate_name,
    validate_page_size,
    validate_request_id,
)

MAX_PARTITION_SIZE = 10_000
MAX_EXECUTORS = 100


class BatchStatus(str, Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    CANCELLED = "CANCELLED"


FINISHED = frozenset({BatchStatus.SUCCESS, BatchStatus.FAILURE, BatchStatus.CANCELLED})


@dataclass(frozen=True)
class BatchOptions:
    """The documented batch_task_options. pyspark_partition_size is the chunk size (inputs per
    durable unit of work) and pyspark_max_executors the chunks in flight per worker: the names
    are kept from Launch, where they sized Spark partitions and executors."""

    cpus: float = 1.0
    memory: str = "1Gi"
    gpus: int = 0
    gpu_type: str = ""
    max_workers: int = 1
    pyspark_partition_size: int = 100
    pyspark_max_executors: int = 2


def validate_options(o: BatchOptions) -> None:
    """The job's endpoint takes these as its settings, so the endpoint's bounds apply here too
    and are reported for the option's own field."""
    if not (math.isfinite(o.cpus) and 1 <= o.cpus <= MAX_CPUS):
        raise InvalidArgument("options.cpus", f"must be between 1 and {MAX_CPUS}, got {o.cpus}")
    parse_memory("options.memory", o.memory)
    if o.gpus < 0 or o.gpus > MAX_GPUS:
        raise InvalidArgument("options.gpus", f"must be between 0 and {MAX_GPUS}")
    if o.gpus and not o.gpu_type:
        raise InvalidArgument("options.gpu_type", "is required when gpus > 0")
    if o.gpu_type:
        accelerator_for("options.gpu_type", o.gpu_type)
    if not 1 <= o.max_workers <= MAX_WORKERS:
        raise InvalidArgument("options.max_workers", f"must be between 1 and {MAX_WORKERS}")
    if not 1 <= o.pyspark_partition_size <= MAX_PARTITION_SIZE:
        raise InvalidArgument("options.pyspark_partition_size", f"must be between 1 and {MAX_PARTITION_SIZE}")
    if not 1 <= o.pyspark_max_executors <= MAX_EXECUTORS:
        raise InvalidArgument("options.pyspark_max_executors", f"must be between 1 and {MAX_EXECUTORS}")
    if o.pyspark_max_executors * o.max_workers > MAX_CALLS_IN_FLIGHT:
        raise InvalidArgument(
            "options.pyspark_max_executors",
            f"pyspark_max_executors × max_workers must be at most {MAX_CALLS_IN_FLIGHT}, "
            f"got {o.pyspark_max_executors * o.max_workers}",
        )


@dataclass(frozen=True)
class BatchJob:
    job_id: str
    owner: str
    bundle_name: str
    endpoint_id: str
    status: BatchStatus
    status_reason: str
    serialization_format: str  # "json" or "pickle"
    options: BatchOptions
    labels: dict[str, str]
    total_count: int
    succeeded_count: int
    failed_count: int
    chunk_size: int
    result_url: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    request_id: str | None = None
    extra: dict = field(default_factory=dict)

    def replace(self, **changes: object) -> BatchJob:
        return dataclasses.replace(self, **changes)


class BatchJobRepository(Protocol):
    def add(self, job: BatchJob) -> BatchJob: ...

    def get(self, owner: str, job_id: str) -> BatchJob | None: ...

    def get_by_request_id(self, owner: str, request_id: str) -> BatchJob | None: ...

    def list(self, owner: str, page_size: int, page_token: str) -> Page: ...

    def update(self, job_id: str, **values: object) -> None: ...


def chunk_key(job_id: str, index: int) -> str:
    return f"batch/{job_id}/chunk-{index:06d}"


def result_key(owner: str, job_id: str, fmt: str) -> str:
    return f"{results_prefix(owner)}/batch-{job_id}.{'pkl' if fmt == 'pickle' else 'json'}"


class BatchJobService:
    def __init__(
        self,
        repo: BatchJobRepository,
        bundles: BundleRepository,
        endpoints: EndpointService,
        tasks: TaskService,
        on_change: Callable[[], object] = lambda: None,
    ) -> None:
        """`on_change` wakes whatever drives jobs to completion (a job was created or cancelled)."""
        self._repo = repo
        self._bundles = bundles
        self._endpoints = endpoints
        self._tasks = tasks
        self._on_change = on_change

    async def create(
        self,
        owner: str,
        bundle_name: str,
        inputs: list[dict[str, object]],
        fmt: str,
        options: BatchOptions,
        labels: dict[str, str],
        request_id: str = "",
    ) -> BatchJob:
        """Validates everything first, so bad input creates nothing; then records the job, its
        temporary endpoint and its chunk tasks."""
        validate_request_id("request_id", request_id)
        validate_name("bundle_name", bundle_name)
        if fmt not in ("json", "pickle"):
            raise InvalidArgument("serialization_format", "must be JSON or PICKLE")
        if not inputs:
            raise InvalidArgument("inputs", "must hold at least one input")
        if len(inputs) > MAX_INPUTS:
            raise InvalidArgument("inputs", f"at most {MAX_INPUTS} inputs, got {len(inputs)}")
        validate_options(options)
        validate_labels("labels", labels)
        if request_id:
            existing = await asyncio.to_thread(self._repo.get_by_request_id, owner, request_id)
            if existing is not None:
                return existing
        if await asyncio.to_thread(self._bundles.get, owner, bundle_name) is None:
            raise NotFound("model bundle", bundle_name)

        job_id = uuid.uuid4().hex
        size = options.pyspark_partition_size
        chunks = [inputs[i : i + size] for i in range(0, len(inputs), size)]
        endpoint = await self._endpoints.create(
            owner,
            f"{BATCH_ENDPOINT_PREFIX}{job_id[:20]}",
            EndpointSettings(
                bundle_name=bundle_name,
                endpoint_type=EndpointType.ASYNC,
                cpus=options.cpus,
                memory=options.memory,
                gpus=options.gpus,
                gpu_type=options.gpu_type,
                min_workers=options.max_workers,  # a batch wants all its workers from the start
                max_workers=options.max_workers,
                per_worker=options.pyspark_max_executors,
                labels={"launch.batch_job": job_id},
                task_expiry_seconds=7 * 86400,
                max_queue_size=len(chunks) + 1,
            ),
            internal=True,
        )
        job = await asyncio.to_thread(
            self._repo.add,
            BatchJob(
                job_id=job_id,
                owner=owner,
                bundle_name=bundle_name,
                endpoint_id=endpoint.endpoint_id,
                status=BatchStatus.PENDING,
                status_reason="waiting for workers",
                serialization_format=fmt,
                options=options,
                labels=labels,
                total_count=len(inputs),
                succeeded_count=0,
                failed_count=0,
                chunk_size=size,
                result_url="",
                created_at=datetime.now(UTC),
                request_id=request_id or None,
            ),
        )
        items = [
            TaskInput(
                work=ChunkRequest(
                    items=tuple(InferenceRequest.from_dict(i) for i in chunk),
                    format=fmt,
                    output_key=chunk_key(job_id, index),
                ),
                client_request_id=f"chunk-{index}",
            )
            for index, chunk in enumerate(chunks)
        ]
        for start in range(0, len(items), 10_000):
            await self._tasks.submit(owner, endpoint.name, items[start : start + 10_000], internal=True)
        self._on_change()
        return job

    async def get(self, owner: str, job_id: str) -> BatchJob:
        validate_id("job_id", job_id)
        job = await asyncio.to_thread(self._repo.get, owner, job_id)
        if job is None:
            raise NotFound("batch job", job_id)
        return job

    async def list(self, owner: str, page_size: int, page_token: str) -> Page:
        return await asyncio.to_thread(self._repo.list, owner, validate_page_size("page_size", page_size), page_token)

    async def cancel(self, owner: str, job_id: str) -> BatchJob:
        job = await self.get(owner, job_id)
        if job.status in FINISHED:
            return job
        now = datetime.now(UTC)
        await asyncio.to_thread(
            self._repo.update,
            job_id,
            status=BatchStatus.CANCELLED.value,
            status_reason="cancelled by the owner",
            finished_at=now,
        )
        self._on_change()
        return job.replace(status=BatchStatus.CANCELLED, status_reason="cancelled by the owner", finished_at=now)
