"""The endpoint field table: each setting of create_model_endpoint / edit_model_endpoint named
once, with its SDK keyword, its field in launch.v1.ModelEndpoint (which is also its update_mask
path), its conversion and create_model_endpoint's default. Create and edit requests are both built
from it, so a setting cannot be sent by one and forgotten by the other."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import field_mask_pb2

from launch.v1 import model_endpoint_pb2 as epb

from .model_bundle import bundle_name_of

REQUIRED = object()  # the keyword has no default


# The endpoint types create_model_endpoint accepts; each names an ENDPOINT_TYPE_* of the contract.
ENDPOINT_TYPES = ("sync", "async", "streaming")


def _endpoint_type(value: str) -> int:
    if value not in ENDPOINT_TYPES:
        raise ValueError("endpoint_type should be one of 'sync', 'async' or 'streaming'")
    return epb.EndpointType.Value(f"ENDPOINT_TYPE_{value.upper()}")


def _hook_names(hooks: list[Any] | None) -> list[str]:
    return [getattr(h, "value", h) for h in (hooks or [])]


def _same(value: Any) -> Any:
    return value


def _or_empty(value: Any) -> Any:
    return value or ""


def _or_zero(value: Any) -> Any:
    return value or 0


@dataclass(frozen=True)
class EndpointField:
    """keyword: the SDK's; path: the ModelEndpoint field and update_mask path; key: its name in the
    payload the self-hosted endpoint_auth_decorator sees; to_payload: SDK value -> payload value;
    to_proto: payload value -> proto value (None leaves the field unset); updatable: whether an
    edit may change it (an endpoint's type is fixed at creation)."""

    keyword: str
    path: str
    default: Any = None
    key: str = ""
    to_payload: Callable[[Any], Any] = _same
    to_proto: Callable[[Any], Any] = _same
    updatable: bool = True

    @property
    def payload_key(self) -> str:
        return self.key or self.keyword


ENDPOINT_FIELDS: tuple[EndpointField, ...] = (
    EndpointField("model_bundle", "bundle_name", REQUIRED, key="bundle_name", to_payload=bundle_name_of),
    EndpointField("cpus", "resources.cpus", 3),
    EndpointField("memory", "resources.memory", "8Gi", to_proto=_or_empty),
    EndpointField("storage", "resources.storage", None, to_proto=_or_empty),
    EndpointField("gpus", "resources.gpus", 0, to_proto=_or_zero),
    EndpointField("min_workers", "workers.min_workers", 1),
    EndpointField("max_workers", "workers.max_workers", 1),
    EndpointField("per_worker", "workers.per_worker", 1),
    EndpointField("gpu_type", "resources.gpu_type", None, to_proto=_or_empty),
    EndpointField("endpoint_type", "endpoint_type", "sync", to_proto=_endpoint_type, updatable=False),
    EndpointField("post_inference_hooks", "post_inference_hooks", None, to_payload=_hook_names),
    EndpointField("default_callback_url", "default_callback_url", None, to_proto=_or_empty),
    EndpointField("labels", "labels", None, to_payload=lambda labels: labels or {}),
    EndpointField("task_expiry_seconds", "task_expiry_seconds", None, to_proto=_or_zero),
    EndpointField("max_queue_size", "max_queue_size", None, to_proto=_or_zero),
    EndpointField("task_timeout_seconds", "task_timeout_seconds", None),
    EndpointField("max_batch_size", "batching.max_batch_size", None),
    EndpointField("max_batch_wait_ms", "batching.max_wait_ms", None),
)
FIELDS_BY_KEYWORD = {f.keyword: f for f in ENDPOINT_FIELDS}


def _set(message: Any, path: str, value: Any) -> None:
    """Sets one (possibly nested) field; None leaves it unset."""
    *parents, leaf = path.split(".")
    for parent in parents:
        message = getattr(message, parent)
    if value is None:
        return
    if isinstance(value, dict):  # a map field: assignment is not allowed
        getattr(message, leaf).update(value)
    elif isinstance(value, list | tuple):  # a repeated field, likewise
        getattr(message, leaf).extend(value)
    else:
        setattr(message, leaf, value)


def create_payload(endpoint_name: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The creation payload (endpoint_name plus every field, keyed as the auth decorator expects)."""
    payload: dict[str, Any] = {"endpoint_name": endpoint_name}
    for f in ENDPOINT_FIELDS:
        payload[f.payload_key] = f.to_payload(settings[f.keyword])
    return payload


def endpoint_from_payload(payload: Mapping[str, Any]) -> epb.ModelEndpoint:
    """The ModelEndpoint to create, from a (possibly decorated) payload."""
    endpoint = epb.ModelEndpoint(name=payload["endpoint_name"])
    for f in ENDPOINT_FIELDS:
        _set(endpoint, f.path, f.to_proto(payload.get(f.payload_key)))
    return endpoint


def update_request(endpoint_name: str, changes: Mapping[str, Any]) -> epb.UpdateModelEndpointRequest:
    """An edit of the settings in `changes` (SDK keyword -> value) that are not None."""
    endpoint = epb.ModelEndpoint(name=endpoint_name)
    paths: list[str] = []
    for keyword, value in changes.items():
        f = FIELDS_BY_KEYWORD[keyword]
        if not f.updatable:
            raise ValueError(f"{keyword} cannot be changed after creation")
        if value is None:
            continue
        _set(endpoint, f.path, f.to_proto(f.to_payload(value)))
        paths.append(f.path)
    return epb.UpdateModelEndpointRequest(endpoint=endpoint, update_mask=field_mask_pb2.FieldMask(paths=paths))


def updatable(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings an edit may change (all but the endpoint's type)."""
    return {k: v for k, v in settings.items() if FIELDS_BY_KEYWORD[k].updatable}
