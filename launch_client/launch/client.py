"""LaunchClient: the documented Scale Launch API, over the launch.v1 gRPC contract."""

from __future__ import annotations

import csv
import datetime
import hashlib
import io
import json
import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import cloudpickle
import yaml
from google.protobuf import field_mask_pb2

from launch.v1 import batch_job_pb2 as bjpb
from launch.v1 import inference_pb2 as ipb
from launch.v1 import model_bundle_pb2 as bpb
from launch.v1 import model_endpoint_pb2 as epb
from launch.v1 import task_pb2 as tpb

from .connection import Connection
from .direct_route import DirectRouter, is_enabled
from .errors import DeadlineExceededError, InvalidArgumentError, NotFoundError
from .find_packages import find_packages_from_imports
from .model_bundle import ModelBundle
from .model_endpoint import (
    AsyncEndpoint,
    Endpoint,
    EndpointRequest,
    EndpointResponse,
    ModelEndpoint,
    SyncEndpoint,
    state_name,
)
from .packaging import choose_form, pickle_bundle, read_requirements_file, zip_directories
from .request_validation import validate_task_request
from .task_stream import TaskStream, create_and_watch

log = logging.getLogger(__name__)
LaunchModel_T = TypeVar("LaunchModel_T")
UPLOAD_CHUNK = 1 << 20


def _bundle_name(model_bundle: ModelBundle | str) -> str:
    if isinstance(model_bundle, ModelBundle):
        return model_bundle.name
    if isinstance(model_bundle, str):
        return model_bundle
    raise TypeError("model_bundle should be type ModelBundle or str")


def _endpoint_name(model_endpoint: Endpoint | ModelEndpoint | str) -> str:
    if isinstance(model_endpoint, Endpoint):
        return model_endpoint.model_endpoint.name
    if isinstance(model_endpoint, ModelEndpoint):
        return model_endpoint.name
    if isinstance(model_endpoint, str):
        return model_endpoint
    raise TypeError("model_endpoint should be an Endpoint, a ModelEndpoint or a str")


def _app_config_json(app_config: dict[str, Any] | str | None) -> str:
    if app_config is None:
        return ""
    if isinstance(app_config, str):
        try:
            with open(app_config, encoding="utf-8") as f:
                app_config = yaml.safe_load(f)
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"app_config: cannot read YAML file {app_config!r}: {exc}") from None
    if not isinstance(app_config, dict):
        raise ValueError("app_config must be a dict or the path of a YAML file holding a mapping")
    return json.dumps(app_config, allow_nan=False)  # NaN and Infinity are not JSON; the server refuses them


def _python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _endpoint_type(value: str) -> int:
    if value not in ("sync", "async"):
        raise ValueError("endpoint_type should be one of 'sync' or 'async'")
    return epb.EndpointType.Value(f"ENDPOINT_TYPE_{value.upper()}")


class LaunchClient:
    """Scale Launch client. `api_key` and `endpoint` default to $LAUNCH_API_KEY and
    $LAUNCH_ENDPOINT (else localhost:50051)."""

    def __init__(
        self,
        api_key: str | None = None,
        endpoint: str | None = None,
        self_hosted: bool = False,
        *,
        timeout: float = 120.0,
        direct_route: bool | None = None,
    ) -> None:
        """direct_route: send sync predicts straight to the endpoint's replicas when the server
        offers a route (default: on unless LAUNCH_DIRECT_ROUTE=0); see launch.direct_route."""
        self.connection = Connection(api_key, endpoint, timeout=timeout)
        self._create_and_watch = True  # until the server says it lacks CreateAndWatchTask
        enabled = is_enabled(direct_route, os.environ)
        # Over TLS to the server, replicas are used only when they speak TLS too, unless the caller
        # asked for the direct route explicitly (accepting plaintext replicas).
        require_tls = self.connection.secure and direct_route is None
        self._direct = DirectRouter(self._get_route, require_tls=require_tls) if enabled else None
        self.self_hosted = self_hosted
        self.upload_bundle_fn: Callable[[bytes, Any], None] | None = None
        self.upload_batch_csv_fn: Callable[[str, Any], None] | None = None
        self.bundle_location_fn: Callable[[], Any] | None = None
        self.batch_csv_location_fn: Callable[[], Any] | None = None
        self.endpoint_auth_decorator_fn: Callable[[dict[str, Any]], dict[str, Any]] = lambda x: x

    def __repr__(self) -> str:
        return f"LaunchClient(connection={self.connection!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LaunchClient) and self.connection == other.connection

    def __hash__(self) -> int:
        return hash(self.connection)

    # ---- self-hosted hooks -------------------------------------------------------------------

    def register_upload_bundle_fn(self, upload_bundle_fn: Callable[[bytes, Any], None]) -> None:
        """Self-hosted mode: called as upload_bundle_fn(serialized_bundle, bundle_url)."""
        self.upload_bundle_fn = upload_bundle_fn

    def register_bundle_location_fn(self, bundle_location_fn: Callable[[], Any]) -> None:
        """Self-hosted mode: returns a new bundle_url for each bundle."""
        self.bundle_location_fn = bundle_location_fn

    def register_upload_batch_csv_fn(self, upload_batch_csv_fn: Callable[[str, Any], None]) -> None:
        """Self-hosted mode: called as upload_batch_csv_fn(csv_text, csv_url)."""
        self.upload_batch_csv_fn = upload_batch_csv_fn

    def register_batch_csv_location_fn(self, batch_csv_location_fn: Callable[[], Any]) -> None:
        """Self-hosted mode: returns a new location for each batch input file."""
        self.batch_csv_location_fn = batch_csv_location_fn

    def register_endpoint_auth_decorator(self, endpoint_auth_decorator_fn: Callable) -> None:
        """Self-hosted mode: rewrites the endpoint creation payload (a dict) before it is sent."""
        self.endpoint_auth_decorator_fn = endpoint_auth_decorator_fn

    # ---- bundles -----------------------------------------------------------------------------

    def _register_bundle(self, spec: bpb.ModelBundleSpec, data: bytes, bundle_url: str | None) -> ModelBundle:
        request_id = uuid.uuid4().hex
        if self.self_hosted:
            if self.upload_bundle_fn is None:
                raise ValueError("Upload_bundle_fn should be registered")
            if bundle_url is None:
                if self.bundle_location_fn is None:
                    raise ValueError("Need either bundle_location_fn or bundle_url to know where to upload bundles")
                bundle_url = self.bundle_location_fn()
            self.upload_bundle_fn(data, bundle_url)
            spec.location = str(bundle_url)
            response = self.connection.call(
                self.connection.bundles.CreateModelBundle,
                bpb.CreateModelBundleRequest(request_id=request_id, bundle=spec),
                idempotent=True,
            )
            return ModelBundle.from_proto(response.model_bundle)
        header = bpb.UploadModelBundleHeader(
            request_id=request_id,
            bundle=spec,
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )

        def messages() -> Iterator[bpb.UploadModelBundleRequest]:
            yield bpb.UploadModelBundleRequest(header=header)
            view = memoryview(data)
            for start in range(0, len(data), UPLOAD_CHUNK):
                yield bpb.UploadModelBundleRequest(chunk=bytes(view[start : start + UPLOAD_CHUNK]))

        response = self.connection.call_stream_unary(
            self.connection.bundles.UploadModelBundle, messages, idempotent=True, timeout=3600
        )
        return ModelBundle.from_proto(response.model_bundle)

    def create_model_bundle(
        self,
        model_bundle_name: str,
        env_params: dict[str, str],
        *,
        load_predict_fn: Callable[[LaunchModel_T], Callable[[Any], Any]] | None = None,
        predict_fn_or_cls: Callable[[Any], Any] | None = None,
        requirements: list[str] | None = None,
        model: LaunchModel_T | None = None,
        load_model_fn: Callable[[], LaunchModel_T] | None = None,
        bundle_url: str | None = None,
        app_config: dict[str, Any] | str | None = None,
        globals_copy: dict[str, Any] | None = None,
    ) -> ModelBundle:
        """Pickles exactly one of {predict_fn_or_cls}, {load_predict_fn + model} or
        {load_predict_fn + load_model_fn}, uploads it and registers the bundle.

        With requirements=None they are inferred from the packages imported in globals_copy
        (pass globals()); the user's own modules found there are pickled by value."""
        form = choose_form(predict_fn_or_cls, load_predict_fn, model, load_model_fn)
        if requirements is None:
            inferred = find_packages_from_imports(globals_copy or {})
            requirements = [f"{name}=={version}" for name, version in inferred.items()]
            log.info("Using inferred requirements %s for model bundle %s", requirements, model_bundle_name)
        app_config_json = _app_config_json(app_config)
        data, sources = pickle_bundle(form, predict_fn_or_cls, load_predict_fn, model, load_model_fn, globals_copy)
        spec = bpb.ModelBundleSpec(
            name=model_bundle_name,
            packaging_type=bpb.PACKAGING_TYPE_CLOUDPICKLE,
            form=bpb.BundleForm.Value(f"BUNDLE_FORM_{form}"),
            requirements=requirements,
            env_params={k: str(v) for k, v in (env_params or {}).items()},
            metadata=sources,
            app_config_json=app_config_json,
            python_version=_python_version(),
        )
        return self._register_bundle(spec, data, bundle_url)

    def create_model_bundle_from_dirs(
        self,
        model_bundle_name: str,
        base_paths: list[str],
        requirements_path: str,
        env_params: dict[str, str],
        load_predict_fn_module_path: str,
        load_model_fn_module_path: str,
        app_config: dict[str, Any] | str | None = None,
    ) -> ModelBundle:
        """Zips the folders (each under its own name), reads the requirements file and registers
        the bundle; module paths such as "my_module1.my_inference_file.f" resolve in the zip."""
        requirements = read_requirements_file(requirements_path)
        app_config_json = _app_config_json(app_config)
        data = zip_directories(base_paths)
        spec = bpb.ModelBundleSpec(
            name=model_bundle_name,
            packaging_type=bpb.PACKAGING_TYPE_ZIP,
            requirements=requirements,
            env_params={k: str(v) for k, v in (env_params or {}).items()},
            metadata={
                "load_predict_fn_module_path": load_predict_fn_module_path,
                "load_model_fn_module_path": load_model_fn_module_path,
            },
            app_config_json=app_config_json,
            python_version=_python_version(),
        )
        return self._register_bundle(spec, data, None)

    def get_model_bundle(self, model_bundle: ModelBundle | str) -> ModelBundle:
        response = self.connection.call(
            self.connection.bundles.GetModelBundle,
            bpb.GetModelBundleRequest(name=_bundle_name(model_bundle)),
            idempotent=True,
        )
        return ModelBundle.from_proto(response.model_bundle)

    def list_model_bundles(self) -> list[ModelBundle]:
        """Every bundle the caller owns, newest first (follows all pages)."""
        pages = self._pages(self.connection.bundles.ListModelBundles, bpb.ListModelBundlesRequest, "model_bundles")
        return [ModelBundle.from_proto(b) for b in pages]

    def _pages(self, method: Callable, request_type: type, field: str) -> Iterator[Any]:
        """Every item of a paged List RPC."""
        token = ""
        while True:
            response = self.connection.call(method, request_type(page_size=1000, page_token=token), idempotent=True)
            yield from getattr(response, field)
            token = response.next_page_token
            if not token:
                return

    def delete_model_bundle(self, model_bundle: ModelBundle | str) -> bool:
        response = self.connection.call(
            self.connection.bundles.DeleteModelBundle,
            bpb.DeleteModelBundleRequest(name=_bundle_name(model_bundle)),
            idempotent=False,
        )
        return response.deleted

    # ---- endpoints ---------------------------------------------------------------------------

    def _wrap_endpoint(self, message: epb.ModelEndpoint) -> SyncEndpoint | AsyncEndpoint:
        model_endpoint = ModelEndpoint.from_proto(message)
        if model_endpoint.endpoint_type == "async":
            return AsyncEndpoint(model_endpoint, self)
        return SyncEndpoint(model_endpoint, self)

    def _get_endpoint_proto(self, name: str) -> epb.ModelEndpoint:
        return self.connection.call(
            self.connection.endpoints.GetModelEndpoint,
            epb.GetModelEndpointRequest(name=name),
            idempotent=True,
        ).endpoint

    def create_model_endpoint(
        self,
        endpoint_name: str,
        model_bundle: ModelBundle | str,
        cpus: float = 3,
        memory: str = "8Gi",
        storage: str | None = None,
        gpus: int = 0,
        min_workers: int = 1,
        max_workers: int = 1,
        per_worker: int = 10,
        gpu_type: str | None = None,
        endpoint_type: str = "sync",
        post_inference_hooks: list[Any] | None = None,
        default_callback_url: str | None = None,
        update_if_exists: bool = False,
        labels: dict[str, str] | None = None,
        task_expiry_seconds: int | None = None,
        max_queue_size: int | None = None,
        task_timeout_seconds: int | None = None,
    ) -> SyncEndpoint | AsyncEndpoint:
        """Creates an endpoint (status UPDATE_PENDING at first). With update_if_exists, an
        existing endpoint of that name is edited instead. `task_timeout_seconds` (async only):
        how long one task may run before it is stopped and fails; None is the server's default
        (3600)."""
        if update_if_exists and self.get_model_endpoint(endpoint_name) is not None:
            return self.edit_model_endpoint(
                endpoint_name,
                model_bundle=model_bundle,
                cpus=cpus,
                memory=memory,
                storage=storage,
                gpus=gpus,
                min_workers=min_workers,
                max_workers=max_workers,
                per_worker=per_worker,
                gpu_type=gpu_type,
                post_inference_hooks=post_inference_hooks,
                default_callback_url=default_callback_url,
                labels=labels,
                task_timeout_seconds=task_timeout_seconds,
            )
        payload: dict[str, Any] = dict(
            endpoint_name=endpoint_name,
            bundle_name=_bundle_name(model_bundle),
            cpus=cpus,
            memory=memory,
            storage=storage,
            gpus=gpus,
            gpu_type=gpu_type,
            min_workers=min_workers,
            max_workers=max_workers,
            per_worker=per_worker,
            endpoint_type=endpoint_type,
            post_inference_hooks=[getattr(h, "value", h) for h in (post_inference_hooks or [])],
            default_callback_url=default_callback_url,
            labels=labels or {},
            task_expiry_seconds=task_expiry_seconds,
            max_queue_size=max_queue_size,
            task_timeout_seconds=task_timeout_seconds,
        )
        payload = self.endpoint_auth_decorator_fn(payload)
        endpoint = epb.ModelEndpoint(
            name=payload["endpoint_name"],
            bundle_name=payload["bundle_name"],
            endpoint_type=_endpoint_type(payload["endpoint_type"]),
            resources=epb.ResourceSettings(
                cpus=payload["cpus"],
                memory=payload["memory"] or "",
                gpus=payload["gpus"] or 0,
                gpu_type=payload["gpu_type"] or "",
                storage=payload["storage"] or "",
            ),
            workers=epb.WorkerSettings(
                min_workers=payload["min_workers"],
                max_workers=payload["max_workers"],
                per_worker=payload["per_worker"],
            ),
            post_inference_hooks=payload["post_inference_hooks"],
            default_callback_url=payload["default_callback_url"] or "",
            labels=payload["labels"],
            task_expiry_seconds=payload["task_expiry_seconds"] or 0,
            max_queue_size=payload["max_queue_size"] or 0,
            task_timeout_seconds=payload.get("task_timeout_seconds"),
        )
        response = self.connection.call(
            self.connection.endpoints.CreateModelEndpoint,
            epb.CreateModelEndpointRequest(request_id=uuid.uuid4().hex, endpoint=endpoint),
            idempotent=True,
        )
        return self._wrap_endpoint(response.endpoint)

    def edit_model_endpoint(
        self,
        model_endpoint: Endpoint | ModelEndpoint | str,
        model_bundle: ModelBundle | str | None = None,
        cpus: float | None = None,
        memory: str | None = None,
        storage: str | None = None,
        gpus: int | None = None,
        min_workers: int | None = None,
        max_workers: int | None = None,
        per_worker: int | None = None,
        gpu_type: str | None = None,
        post_inference_hooks: list[Any] | None = None,
        default_callback_url: str | None = None,
        labels: dict[str, str] | None = None,
        task_timeout_seconds: int | None = None,
    ) -> SyncEndpoint | AsyncEndpoint:
        """Changes only the settings given (a new bundle rolls out a new version)."""
        endpoint = epb.ModelEndpoint(name=_endpoint_name(model_endpoint))
        paths: list[str] = []
        if model_bundle is not None:
            endpoint.bundle_name = _bundle_name(model_bundle)
            paths.append("bundle_name")
        for path, value, target, attr in (
            ("resources.cpus", cpus, endpoint.resources, "cpus"),
            ("resources.memory", memory, endpoint.resources, "memory"),
            ("resources.storage", storage, endpoint.resources, "storage"),
            ("resources.gpus", gpus, endpoint.resources, "gpus"),
            ("resources.gpu_type", gpu_type, endpoint.resources, "gpu_type"),
            ("workers.min_workers", min_workers, endpoint.workers, "min_workers"),
            ("workers.max_workers", max_workers, endpoint.workers, "max_workers"),
            ("workers.per_worker", per_worker, endpoint.workers, "per_worker"),
            ("default_callback_url", default_callback_url, endpoint, "default_callback_url"),
            ("task_timeout_seconds", task_timeout_seconds, endpoint, "task_timeout_seconds"),
        ):
            if value is not None:
                setattr(target, attr, value)
                paths.append(path)
        if post_inference_hooks is not None:
            endpoint.post_inference_hooks.extend(getattr(h, "value", h) for h in post_inference_hooks)
            paths.append("post_inference_hooks")
        if labels is not None:
            endpoint.labels.update(labels)
            paths.append("labels")
        response = self.connection.call(
            self.connection.endpoints.UpdateModelEndpoint,
            epb.UpdateModelEndpointRequest(endpoint=endpoint, update_mask=field_mask_pb2.FieldMask(paths=paths)),
            idempotent=True,
        )
        return self._wrap_endpoint(response.endpoint)

    def get_model_endpoint(self, endpoint_name: str) -> SyncEndpoint | AsyncEndpoint | None:
        """The endpoint, or None when the caller has none of that name."""
        try:
            return self._wrap_endpoint(self._get_endpoint_proto(endpoint_name))
        except NotFoundError:
            return None

    def list_model_endpoints(self) -> list[SyncEndpoint | AsyncEndpoint]:
        pages = self._pages(self.connection.endpoints.ListModelEndpoints, epb.ListModelEndpointsRequest, "endpoints")
        return [self._wrap_endpoint(e) for e in pages]

    def delete_model_endpoint(self, model_endpoint: Endpoint | ModelEndpoint | str) -> bool:
        response = self.connection.call(
            self.connection.endpoints.DeleteModelEndpoint,
            epb.DeleteModelEndpointRequest(name=_endpoint_name(model_endpoint)),
            idempotent=False,
        )
        return response.deleted

    def read_endpoint_creation_logs(self, model_endpoint: Endpoint | ModelEndpoint | str) -> str:
        """The endpoint's events (status transitions, serving messages) and replica logs, as text."""
        response = self.connection.call(
            self.connection.endpoints.ReadModelEndpointCreationLogs,
            epb.ReadModelEndpointCreationLogsRequest(name=_endpoint_name(model_endpoint)),
            idempotent=True,
        )
        lines = [
            f"{e.time.ToDatetime():%Y-%m-%d %H:%M:%S} "
            f"{epb.EndpointStatus.Name(e.status).removeprefix('ENDPOINT_STATUS_')}: {e.message}"
            for e in response.events
        ]
        if response.logs:
            lines += ["", response.logs]
        return "\n".join(lines)

    # ---- requests ----------------------------------------------------------------------------

    def _get_route(self, endpoint_name: str, timeout: float) -> epb.GetModelEndpointRouteResponse:
        return self.connection.endpoints.GetModelEndpointRoute(
            epb.GetModelEndpointRouteRequest(name=endpoint_name), metadata=self.connection.metadata, timeout=timeout
        )

    def _predict(self, endpoint_name: str, request: EndpointRequest, timeout: float | None) -> EndpointResponse:
        message = ipb.PredictRequest(endpoint_name=endpoint_name, input=request.to_input())
        response = self._direct.predict(message, timeout or self.connection.timeout) if self._direct else None
        if response is None:
            response = self.connection.call(
                self.connection.inference.Predict, message, idempotent=False, timeout=timeout
            )
        return EndpointResponse.from_proto(self, response.result)

    def sync_request(
        self,
        endpoint_name: str,
        url: str | None = None,
        args: dict[str, Any] | None = None,
        return_pickled: bool = True,
    ) -> dict[str, Any]:
        """Runs one request on a sync endpoint; returns {"status", "result" | "result_url", "traceback"}."""
        validate_task_request(url=url, args=args)
        response = self._predict(
            endpoint_name, EndpointRequest(url=url, args=args, return_pickled=return_pickled), None
        )
        return {k: v for k, v in vars(response).items() if k != "client" and v is not None}

    def _task_spec(self, request: EndpointRequest) -> tpb.TaskSpec:
        return tpb.TaskSpec(
            input=request.to_input(),
            callback_url=request.callback_url or "",
            client_request_id=request.request_id or "",
        )

    def _create_task(self, endpoint_name: str, request: EndpointRequest) -> str:
        response = self.connection.call(
            self.connection.tasks.CreateTask,
            tpb.CreateTaskRequest(
                request_id=uuid.uuid4().hex, endpoint_name=endpoint_name, task=self._task_spec(request)
            ),
            idempotent=True,
        )
        return response.task.task_id

    def _create_and_watch_task(self, endpoint_name: str, request: EndpointRequest) -> tuple[str, TaskStream | None]:
        """Submits one task and keeps its result stream open (one call); CreateTask where the server
        lacks CreateAndWatchTask. Returns the task id and the stream, if any."""
        if self._create_and_watch:
            stream = create_and_watch(self.connection, endpoint_name, self._task_spec(request))
            if stream is not None:
                return stream.latest.task_id, stream
            self._create_and_watch = False  # an older server: don't ask again
        return self._create_task(endpoint_name, request), None

    def _create_tasks(self, endpoint_name: str, requests: list[EndpointRequest]) -> dict[str, str]:
        """Queues requests in groups of up to 10,000; returns client request id -> task id."""
        ids: dict[str, str] = {}
        for start in range(0, len(requests), 10_000):
            group = requests[start : start + 10_000]
            response = self.connection.call(
                self.connection.tasks.BatchCreateTasks,
                tpb.BatchCreateTasksRequest(
                    request_id=uuid.uuid4().hex,
                    endpoint_name=endpoint_name,
                    tasks=[self._task_spec(r) for r in group],
                ),
                idempotent=True,
            )
            for index, (request, task) in enumerate(zip(group, response.tasks, strict=True)):
                ids[request.request_id or str(start + index)] = task.task_id
        return ids

    def _watch_tasks(self, task_ids: list[str], timeout: float | None) -> Iterator[tpb.Task]:
        try:
            for message in self.connection.stream(
                self.connection.tasks.WatchTasks, tpb.WatchTasksRequest(task_ids=task_ids), timeout=timeout
            ):
                yield message.task
        except DeadlineExceededError:
            raise TimeoutError(f"tasks not finished within {timeout} s") from None

    def async_request(
        self,
        endpoint_name: str,
        url: str | None = None,
        args: dict[str, Any] | None = None,
        callback_url: str | None = None,
        return_pickled: bool = True,
    ) -> str:
        """Queues one request on an async endpoint and returns its task id."""
        validate_task_request(url=url, args=args)
        return self._create_task(
            endpoint_name,
            EndpointRequest(url=url, args=args, callback_url=callback_url, return_pickled=return_pickled),
        )

    def get_async_response(self, async_task_id: str) -> dict[str, Any]:
        """{"state": PENDING|STARTED|SUCCESS|FAILURE|CANCELLED, "result" | "result_url", "traceback"}."""
        task = self.connection.call(
            self.connection.tasks.GetTask, tpb.GetTaskRequest(task_id=async_task_id), idempotent=True
        ).task
        out: dict[str, Any] = {"state": state_name(task.state)}
        if task.result.result:
            out["result"] = task.result.result
        if task.result.result_url:
            out["result_url"] = task.result.result_url
        if task.result.traceback:
            out["traceback"] = task.result.traceback
        return out

    # ---- batch jobs ----------------------------------------------------------------------------

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
            bundle_name=_bundle_name(model_bundle),
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

    # ---- results -----------------------------------------------------------------------------

    def download_result(self, result_url: str) -> bytes:
        """The stored bytes behind a result_url, streamed through the server."""
        chunks = self.connection.stream(
            self.connection.tasks.DownloadResult,
            tpb.DownloadResultRequest(result_url=result_url),
            timeout=self.connection.timeout,
        )
        return b"".join(c.chunk for c in chunks)

    def load_pickled_result(self, result_url: str) -> Any:
        """Downloads and unpickles a result (this runs in the caller's process, never the server)."""
        return cloudpickle.loads(self.download_result(result_url))
