"""BatchJobService servicer."""

from __future__ import annotations

import asyncio
import csv
import io
import json

import grpc
from launch.v1 import batch_job_pb2 as bjpb
from launch.v1 import batch_job_pb2_grpc as bjgrpc

from launch_server.domain.batch_jobs import BatchJob, BatchJobService, BatchOptions
from launch_server.domain.bundles import BundleService
from launch_server.domain.errors import InvalidArgument, NotImplementedYet

from .auth import owner
from .convert import timestamp

MAX_INPUT_FILE = 256 << 20
FORMATS = {bjpb.SERIALIZATION_FORMAT_JSON: "json", bjpb.SERIALIZATION_FORMAT_PICKLE: "pickle"}


def options_from_proto(o: bjpb.BatchTaskOptions) -> BatchOptions:
    """Zero means unset for every option (none has a meaningful zero except gpus, whose default is 0)."""
    d = BatchOptions()
    return BatchOptions(
        cpus=o.cpus or d.cpus,
        memory=o.memory or d.memory,
        gpus=o.gpus,
        gpu_type=o.gpu_type,
        max_workers=o.max_workers or d.max_workers,
        pyspark_partition_size=o.pyspark_partition_size or d.pyspark_partition_size,
        pyspark_max_executors=o.pyspark_max_executors or d.pyspark_max_executors,
    )


def job_to_proto(job: BatchJob) -> bjpb.BatchJob:
    o = job.options
    return bjpb.BatchJob(
        job_id=job.job_id,
        bundle_name=job.bundle_name,
        status=bjpb.BatchJobStatus.Value(f"BATCH_JOB_STATUS_{job.status.value}"),
        status_reason=job.status_reason,
        serialization_format=bjpb.SerializationFormat.Value(f"SERIALIZATION_FORMAT_{job.serialization_format.upper()}"),
        options=bjpb.BatchTaskOptions(
            cpus=o.cpus,
            memory=o.memory,
            gpus=o.gpus,
            gpu_type=o.gpu_type,
            max_workers=o.max_workers,
            pyspark_partition_size=o.pyspark_partition_size,
            pyspark_max_executors=o.pyspark_max_executors,
        ),
        labels=job.labels,
        result_url=job.result_url,
        total_count=job.total_count,
        succeeded_count=job.succeeded_count,
        failed_count=job.failed_count,
        create_time=timestamp(job.created_at),
        start_time=timestamp(job.started_at),
        end_time=timestamp(job.finished_at),
    )


def urls_from_csv(text: str) -> list[str]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "url" not in reader.fieldnames:
        raise InvalidArgument("input_location", "the CSV file needs a 'url' column")
    return [row["url"] for row in reader if row.get("url")]


class BatchJobServicer(bjgrpc.BatchJobServiceServicer):
    def __init__(self, jobs: BatchJobService | None, bundles: BundleService) -> None:
        self._jobs = jobs
        self._bundles = bundles

    def _service(self) -> BatchJobService:
        if self._jobs is None:
            raise NotImplementedYet("batch jobs need the serving layer (LAUNCH_SERVING=1)")
        return self._jobs

    async def _inputs(self, request: bjpb.CreateBatchJobRequest) -> list[dict[str, object]]:
        kind = request.WhichOneof("inputs")
        if kind is None:
            raise InvalidArgument("inputs", "exactly one of urls, args and input_location is required")
        if kind == "urls":
            urls = list(request.urls.urls)
        elif kind == "args":
            inputs = []
            for index, text in enumerate(request.args.args_json):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise InvalidArgument(f"args.args_json[{index}]", f"is not valid JSON: {exc}") from None
                if not isinstance(value, dict):
                    raise InvalidArgument(f"args.args_json[{index}]", "must be a JSON object of keyword arguments")
                inputs.append({"args_json": text, "return_pickled": False})
            return inputs
        else:
            location = request.input_location
            location = self._bundles.check_readable("input_location", location, owner())
            storage = self._bundles.storage
            try:
                size = await asyncio.to_thread(storage.size_of, location)
            except FileNotFoundError:
                raise InvalidArgument("input_location", f"no object at {location!r}") from None
            if size > MAX_INPUT_FILE:
                raise InvalidArgument("input_location", f"the input file is over {MAX_INPUT_FILE} bytes")
            data = b"".join(await asyncio.to_thread(lambda: list(storage.read_chunks(location))))
            urls = urls_from_csv(data.decode("utf-8", errors="replace"))
        for index, url in enumerate(urls):
            if not url or len(url) > 2048:
                raise InvalidArgument(f"urls[{index}]", "must be 1 to 2048 characters")
        return [{"url": url, "return_pickled": False} for url in urls]

    async def CreateBatchJob(
        self, request: bjpb.CreateBatchJobRequest, context: grpc.aio.ServicerContext
    ) -> bjpb.CreateBatchJobResponse:
        service = self._service()
        if request.serialization_format not in FORMATS:
            raise InvalidArgument(
                "serialization_format", "must be SERIALIZATION_FORMAT_JSON or SERIALIZATION_FORMAT_PICKLE"
            )
        inputs = await self._inputs(request)
        job = await service.create(
            owner(),
            request.bundle_name,
            inputs,
            FORMATS[request.serialization_format],
            options_from_proto(request.options),
            dict(request.labels),
            request.request_id,
        )
        return bjpb.CreateBatchJobResponse(job=job_to_proto(job))

    async def GetBatchJob(
        self, request: bjpb.GetBatchJobRequest, context: grpc.aio.ServicerContext
    ) -> bjpb.GetBatchJobResponse:
        return bjpb.GetBatchJobResponse(job=job_to_proto(await self._service().get(owner(), request.job_id)))

    async def CancelBatchJob(
        self, request: bjpb.CancelBatchJobRequest, context: grpc.aio.ServicerContext
    ) -> bjpb.CancelBatchJobResponse:
        return bjpb.CancelBatchJobResponse(job=job_to_proto(await self._service().cancel(owner(), request.job_id)))

    async def ListBatchJobs(
        self, request: bjpb.ListBatchJobsRequest, context: grpc.aio.ServicerContext
    ) -> bjpb.ListBatchJobsResponse:
        page = await self._service().list(owner(), request.page_size, request.page_token)
        return bjpb.ListBatchJobsResponse(
            jobs=[job_to_proto(j) for j in page.items], next_page_token=page.next_page_token
        )
