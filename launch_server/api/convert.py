"""Conversions between protobuf messages and domain entities, in one place."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from google.protobuf.timestamp_pb2 import Timestamp
from launch.v1 import model_bundle_pb2 as bpb
from launch.v1 import model_endpoint_pb2 as epb

from launch_server.domain.endpoints import Endpoint, EndpointEvent, EndpointSettings, EndpointType
from launch_server.domain.entities import Bundle, BundleForm, BundleSpec, PackagingType
from launch_server.domain.errors import InvalidArgument
from launch_server.observability.log_chunks import LogLine

if TYPE_CHECKING:
    from launch_server.serving.endpoint_stats import EndpointStats


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def packaging_from_proto(value: int, field: str) -> PackagingType:
    name = bpb.PackagingType.Name(value) if value in bpb.PackagingType.values() else ""
    if name in ("", "PACKAGING_TYPE_UNSPECIFIED"):
        raise InvalidArgument(field, "must be PACKAGING_TYPE_CLOUDPICKLE or PACKAGING_TYPE_ZIP")
    return PackagingType(name.removeprefix("PACKAGING_TYPE_"))


def form_from_proto(value: int, field: str) -> BundleForm:
    if value not in bpb.BundleForm.values():
        raise InvalidArgument(field, f"unknown bundle form {value}")
    return BundleForm(bpb.BundleForm.Name(value).removeprefix("BUNDLE_FORM_"))


def bundle_spec_from_proto(spec: bpb.ModelBundleSpec, prefix: str) -> BundleSpec:
    return BundleSpec(
        name=spec.name,
        packaging_type=packaging_from_proto(spec.packaging_type, f"{prefix}.packaging_type"),
        form=form_from_proto(spec.form, f"{prefix}.form"),
        requirements=tuple(spec.requirements),
        env_params=dict(spec.env_params),
        metadata=dict(spec.metadata),
        app_config_json=spec.app_config_json,
        python_version=spec.python_version,
        location=spec.location,
    )


def bundle_to_proto(bundle: Bundle) -> bpb.ModelBundle:
    return bpb.ModelBundle(
        bundle_id=bundle.bundle_id,
        name=bundle.name,
        packaging_type=bpb.PackagingType.Value(f"PACKAGING_TYPE_{bundle.packaging_type.value}"),
        form=bpb.BundleForm.Value(f"BUNDLE_FORM_{bundle.form.value}"),
        requirements=list(bundle.requirements),
        env_params=bundle.env_params,
        metadata=bundle.metadata,
        app_config_json=bundle.app_config_json,
        python_version=bundle.python_version,
        location=bundle.location,
        size_bytes=bundle.size_bytes,
        sha256=bundle.sha256,
        create_time=timestamp(bundle.created_at),
    )


# ---- endpoints -----------------------------------------------------------------------------------

DEFAULTS = EndpointSettings(bundle_name="")


ENDPOINT_TYPES = {
    epb.ENDPOINT_TYPE_SYNC: EndpointType.SYNC,
    epb.ENDPOINT_TYPE_ASYNC: EndpointType.ASYNC,
    epb.ENDPOINT_TYPE_STREAMING: EndpointType.STREAMING,
}


def endpoint_type_from_proto(value: int, field: str) -> EndpointType:
    endpoint_type = ENDPOINT_TYPES.get(value)
    if endpoint_type is None:
        raise InvalidArgument(
            field,
            "must be ENDPOINT_TYPE_SYNC, ENDPOINT_TYPE_ASYNC or ENDPOINT_TYPE_STREAMING (sync, async or streaming)",
        )
    return endpoint_type


def _task_timeout(m: epb.ModelEndpoint) -> int:
    """The field is optional: unset means the default, an explicit value (0 too) is validated."""
    return m.task_timeout_seconds if m.HasField("task_timeout_seconds") else DEFAULTS.task_timeout_seconds


def _max_batch_size(m: epb.ModelEndpoint) -> int | None:
    """Unset (or no batching message) keeps the bundle's own limit; a set value is validated."""
    b = m.batching
    return b.max_batch_size if m.HasField("batching") and b.HasField("max_batch_size") else None


def _max_batch_wait_ms(m: epb.ModelEndpoint) -> int | None:
    b = m.batching
    return b.max_wait_ms if m.HasField("batching") and b.HasField("max_wait_ms") else None


def settings_from_proto(m: epb.ModelEndpoint) -> EndpointSettings:
    """Unset fields take Launch's documented defaults; an explicit 0 is kept (and validated)."""
    r, w = m.resources, m.workers
    min_workers = w.min_workers if w.HasField("min_workers") else DEFAULTS.min_workers
    return EndpointSettings(
        bundle_name=m.bundle_name,
        endpoint_type=endpoint_type_from_proto(m.endpoint_type, "endpoint.endpoint_type"),
        cpus=r.cpus if r.HasField("cpus") else DEFAULTS.cpus,
        memory=r.memory or DEFAULTS.memory,
        gpus=r.gpus if r.HasField("gpus") else 0,
        gpu_type=r.gpu_type,
        storage=r.storage,
        min_workers=min_workers,
        max_workers=w.max_workers if w.HasField("max_workers") else max(1, min_workers),
        per_worker=w.per_worker if w.HasField("per_worker") else DEFAULTS.per_worker,
        post_inference_hooks=tuple(m.post_inference_hooks),
        default_callback_url=m.default_callback_url,
        labels=dict(m.labels),
        task_expiry_seconds=m.task_expiry_seconds or DEFAULTS.task_expiry_seconds,
        max_queue_size=m.max_queue_size or DEFAULTS.max_queue_size,
        task_timeout_seconds=_task_timeout(m),
        max_batch_size=_max_batch_size(m),
        max_batch_wait_ms=_max_batch_wait_ms(m),
    )


# update_mask path -> (EndpointSettings field, reader from the request's ModelEndpoint)
UPDATABLE = {
    "bundle_name": ("bundle_name", lambda m: m.bundle_name),
    "resources.cpus": ("cpus", lambda m: m.resources.cpus),
    "resources.memory": ("memory", lambda m: m.resources.memory),
    "resources.gpus": ("gpus", lambda m: m.resources.gpus),
    "resources.gpu_type": ("gpu_type", lambda m: m.resources.gpu_type),
    "resources.storage": ("storage", lambda m: m.resources.storage),
    "workers.min_workers": ("min_workers", lambda m: m.workers.min_workers),
    "workers.max_workers": ("max_workers", lambda m: m.workers.max_workers),
    "workers.per_worker": ("per_worker", lambda m: m.workers.per_worker),
    "post_inference_hooks": ("post_inference_hooks", lambda m: tuple(m.post_inference_hooks)),
    "default_callback_url": ("default_callback_url", lambda m: m.default_callback_url),
    "labels": ("labels", lambda m: dict(m.labels)),
    "task_expiry_seconds": ("task_expiry_seconds", lambda m: m.task_expiry_seconds),
    "max_queue_size": ("max_queue_size", lambda m: m.max_queue_size),
    "task_timeout_seconds": ("task_timeout_seconds", lambda m: _task_timeout(m)),
    # A path named with its field unset clears the limit (back to the bundle's own).
    "batching.max_batch_size": ("max_batch_size", _max_batch_size),
    "batching.max_wait_ms": ("max_batch_wait_ms", _max_batch_wait_ms),
}
GROUPS = {
    "resources": [p for p in UPDATABLE if p.startswith("resources.")],
    "workers": [p for p in UPDATABLE if p.startswith("workers.")],
    "batching": [p for p in UPDATABLE if p.startswith("batching.")],
}


def changes_from_mask(m: epb.ModelEndpoint, paths: list[str]) -> dict[str, object]:
    expanded: list[str] = []
    for path in paths:
        expanded.extend(GROUPS.get(path, [path]))
    changes: dict[str, object] = {}
    for path in expanded:
        if path not in UPDATABLE:
            raise InvalidArgument("update_mask", f"{path!r} cannot be updated; updatable: {sorted(UPDATABLE)}")
        key, read = UPDATABLE[path]
        changes[key] = read(m)
    return changes


def status_to_proto(status) -> int:  # type: ignore[no-untyped-def]
    return epb.EndpointStatus.Value(f"ENDPOINT_STATUS_{status.value}")


def _batching_to_proto(s: EndpointSettings) -> epb.BatchSettings | None:
    """Only the limits the endpoint sets; None (no message) when it keeps both of the bundle's."""
    if s.max_batch_size is None and s.max_batch_wait_ms is None:
        return None
    return epb.BatchSettings(max_batch_size=s.max_batch_size, max_wait_ms=s.max_batch_wait_ms)


def endpoint_type_to_proto(endpoint_type: EndpointType) -> int:
    return epb.EndpointType.Value(f"ENDPOINT_TYPE_{endpoint_type.value}")


def endpoint_to_proto(e: Endpoint, available: int = 0, unavailable: int = 0) -> epb.ModelEndpoint:
    s = e.settings
    return epb.ModelEndpoint(
        endpoint_id=e.endpoint_id,
        name=e.name,
        bundle_name=e.bundle_name,
        endpoint_type=endpoint_type_to_proto(s.endpoint_type),
        status=status_to_proto(e.status),
        status_reason=e.status_reason,
        resources=epb.ResourceSettings(
            cpus=s.cpus, memory=s.memory, gpus=s.gpus, gpu_type=s.gpu_type, storage=s.storage
        ),
        workers=epb.WorkerSettings(
            min_workers=s.min_workers,
            max_workers=s.max_workers,
            per_worker=s.per_worker,
            available_workers=available,
            unavailable_workers=unavailable,
        ),
        post_inference_hooks=list(s.post_inference_hooks),
        default_callback_url=s.default_callback_url,
        labels=s.labels,
        task_expiry_seconds=s.task_expiry_seconds,
        max_queue_size=s.max_queue_size,
        task_timeout_seconds=s.task_timeout_seconds,
        batching=_batching_to_proto(s),
        create_time=timestamp(e.created_at),
        update_time=timestamp(e.updated_at),
        generation=e.generation,
    )


def event_to_proto(event: EndpointEvent) -> epb.EndpointEvent:
    return epb.EndpointEvent(time=timestamp(event.time), status=status_to_proto(event.status), message=event.message)


LOG_STREAMS = {
    "stdout": epb.LOG_STREAM_STDOUT,
    "stderr": epb.LOG_STREAM_STDERR,
    "log": epb.LOG_STREAM_LOGGING,
    "traceback": epb.LOG_STREAM_TRACEBACK,
}


def stats_to_proto(stats: EndpointStats) -> epb.EndpointStats:
    endpoint, window = stats.endpoint, stats.window
    message = epb.EndpointStats(
        name=endpoint.name,
        endpoint_type=endpoint_type_to_proto(endpoint.settings.endpoint_type),
        status=status_to_proto(endpoint.status),
        requests_per_second=window.requests_per_second,
        errors_per_second=window.errors_per_second,
        p50_seconds=window.p50_seconds,
        p99_seconds=window.p99_seconds,
        in_flight=max(0, stats.in_flight),
        tasks_queued=stats.tasks_queued,
        oldest_queued_seconds=stats.oldest_queued_s,
        workers_running=stats.workers_running,
        workers_starting=stats.workers_starting,
        min_workers=endpoint.settings.min_workers,
        max_workers=endpoint.settings.max_workers,
        requests_total=window.requests_total,
        failures_total=window.failures_total,
        window_seconds=window.seconds,
    )
    if stats.workers_desired is not None:
        message.workers_desired = stats.workers_desired
    return message


def log_line_to_proto(line: LogLine) -> epb.EndpointLogLine:
    message = epb.EndpointLogLine(replica=line.replica, stream=LOG_STREAMS[line.stream], text=line.text)
    message.time.FromNanoseconds(int(line.time * 1e9))
    return message
