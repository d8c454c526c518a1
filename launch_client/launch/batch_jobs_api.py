"""The batch job methods of LaunchClient: run a bundle over many inputs (urls, a CSV of urls in
self-hosted mode, or keyword-argument dicts), follow the job and load its results."""

from __future__ import annotations

import csv
import datetime
import io
import json
import uuid
from typing import Any

import cloudpickle

from launch.v1 import batch_job_pb2 as bjpb

from .client_core import ClientCore
from .errors import InvalidArgumentError
from .model_bundle import ModelBundle, bundle_name_of


class BatchJobsApi(ClientCore):
    BATCH_TASK_OPTIONS = (
        "cpus",
        "memory",
        "gpus",
        "gpu_type",
        "max_workers",
        "pyspark_partition_size",
        "pyspark_max_executors",
    )

    def batch_async_request(
        self,
        model_bundle: ModelBundle | str,
        urls: list[str] | None = None,
        inputs: list[dict[str, Any]] | None = None,
        batch_url_file_location: str | None = None,
        serialization_format: str = "json",
        labels: dict[str, str] | None = None,
        batch_task_options: dict[str, Any] | None = None,
    ) -> str:
        """Runs the bundle over `urls` (each file's bytes go to the predict function) or `inputs`
        (each a dict of keyword arguments) and returns the job id. Results keep the inputs' order;
        an input whose predict call raised carries its error. In self-hosted mode, urls are written
        as a CSV file through register_upload_batch_csv_fn and only its location is sent."""
        if (urls is None) == (inputs is None):
            raise ValueError("Must specify exactly one of urls and inputs")
        if not (urls if urls is not None else inputs):
            raise ValueError("urls or inputs must not be empty")
        options = dict(batch_task_options or {})
        unknown = sorted(set(options) - set(self.BATCH_TASK_OPTIONS))
        if unknown:
            raise InvalidArgumentError(
                f"batch_task_options: unknown keys {unknown}; allowed: {list(self.BATCH_TASK_OPTIONS)}",
                field="batch_task_options",
            )
        fmt = serialization_format.lower()
        if fmt not in ("json", "pickle"):
            raise ValueError("serialization_format must be 'json' or 'pickle'")
        request = bjpb.CreateBatchJobRequest(
            request_id=uuid.uuid4().hex,
            bundle_name=bundle_name_of(model_bundle),
            serialization_format=bjpb.SERIALIZATION_FORMAT_JSON if fmt == "json" else bjpb.SERIALIZATION_FORMAT_PICKLE,
            options=bjpb.BatchTaskOptions(**options),
            labels=labels or {},
        )
        if inputs is not None:
            if not all(isinstance(item, dict) for item in inputs):
                raise ValueError("each input must be a dict of keyword arguments")
            request.args.args_json.extend(json.dumps(item, allow_nan=False) for item in inputs)
        elif self.self_hosted:
            request.input_location = self._upload_batch_csv(urls or [], batch_url_file_location)
        else:
            request.urls.urls.extend(urls or [])
        response = self.connection.call(self.connection.batch_jobs.CreateBatchJob, request, idempotent=True)
        return response.job.job_id

    def _upload_batch_csv(self, urls: list[str], location: str | None) -> str:
        if self.upload_batch_csv_fn is None:
            raise ValueError("register_upload_batch_csv_fn first (self-hosted mode)")
        if location is None:
            location_fn = self.batch_csv_location_fn or self.bundle_location_fn
            if location_fn is None:
                raise ValueError("give batch_url_file_location or register_batch_csv_location_fn")
            location = location_fn()
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["url"])
        writer.writerows([url] for url in urls)
        self.upload_batch_csv_fn(buffer.getvalue(), location)
        return str(location)

    @staticmethod
    def _batch_job_dict(job: bjpb.BatchJob) -> dict[str, Any]:
        # Duration runs from creation (queueing and worker start-up included) to the end, or now.
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        end = job.end_time.ToDatetime() if job.HasField("end_time") else now
        duration = str(end - job.create_time.ToDatetime()).split(".")[0] if job.HasField("create_time") else None
        return {
            "job_id": job.job_id,
            "status": bjpb.BatchJobStatus.Name(job.status).removeprefix("BATCH_JOB_STATUS_"),
            "status_reason": job.status_reason or None,
            "result": job.result_url or None,
            "duration": duration,
            "num_total": job.total_count,
            "num_succeeded": job.succeeded_count,
            "num_failed": job.failed_count,
            "labels": dict(job.labels),
        }

    def get_batch_async_response(self, batch_job_id: str) -> dict[str, Any]:
        """{"status", "result" (results location), "duration", "num_total", "num_succeeded", "num_failed", ...}."""
        response = self.connection.call(
            self.connection.batch_jobs.GetBatchJob, bjpb.GetBatchJobRequest(job_id=batch_job_id), idempotent=True
        )
        return self._batch_job_dict(response.job)

    def cancel_batch_job(self, batch_job_id: str) -> dict[str, Any]:
        response = self.connection.call(
            self.connection.batch_jobs.CancelBatchJob, bjpb.CancelBatchJobRequest(job_id=batch_job_id), idempotent=True
        )
        return self._batch_job_dict(response.job)

    def load_batch_results(self, batch_job_id: str) -> list[dict[str, Any]]:
        """The finished job's results as a list of {"result": value} / {"error": text}, in input order."""
        response = self.get_batch_async_response(batch_job_id)
        if response["status"] != "SUCCESS":
            raise ValueError(f"batch job {batch_job_id} is {response['status']}, not SUCCESS")
        data = self.download_result(response["result"])
        return cloudpickle.loads(data) if response["result"].endswith(".pkl") else json.loads(data)
