"""BatchJobService servicer."""

from __future__ import annotations

import grpc
from launch.v1 import batch_job_pb2 as bjpb
from launch.v1 import batch_job_pb2_grpc as bjgrpc

from launch_server.api.auth import owner
from launch_server.api.convert import timestamp
from launch_server.domain.batch_inputs import BatchInputs
from launch_server.domain.batch_jobs import BatchJob, BatchJobService, BatchOptions, validate_options
from launch_server.domain.bundles import BundleService
from launch_server.domain.errors import InvalidArgument, NotServedHere
from launch_server.domain.validation import validate_labels

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


class BatchJobServicer(bjgrpc.BatchJobServiceServicer):
    def __init__(self, jobs: BatchJobService | None, bundles: BundleService) -> None:
        self._jobs = jobs
        self._bundles = bundles
        self._sources = BatchInputs(bundles.storage)

    def _service(self) -> BatchJobService:
        if self._jobs is None:
            raise NotServedHere("batch jobs need the serving layer (LAUNCH_SERVING=1)")
        return self._jobs

    async def _inputs(self, request: bjpb.CreateBatchJobRequest) -> list[dict[str, object]]:
        kind = request.WhichOneof("inputs")
        if kind is None:
            raise InvalidArgument("inputs", "exactly one of urls, args and input_location is required")
        if kind == "urls":
            return await self._sources.from_urls(request.urls.urls)
        if kind == "args":
            return await self._sources.from_args(request.args.args_json)
        location = self._bundles.check_readable("input_location", request.input_location, owner())
        return await self._sources.from_file(location)

    async def CreateBatchJob(
        self, request: bjpb.CreateBatchJobRequest, context: grpc.aio.ServicerContext
    ) -> bjpb.CreateBatchJobResponse:
        # Options and labels are plain values, refused for their field even with no serving layer.
        validate_options(options_from_proto(request.options))
        validate_labels("labels", dict(request.labels))
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
