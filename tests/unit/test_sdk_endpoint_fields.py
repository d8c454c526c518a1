"""The endpoint field table (launch.endpoint_fields) against the contract and the SDK's
signatures: a setting added to the proto or to create_model_endpoint but not to the table, or one
that update_if_exists would drop, fails here."""

from __future__ import annotations

import inspect
from typing import Any

import launch
import pytest
from launch.endpoint_fields import ENDPOINT_FIELDS, REQUIRED
from launch.model_endpoint import ModelEndpoint
from launch.v1 import model_endpoint_pb2 as epb

# ModelEndpoint fields the server sets, never the client.
OUTPUT_ONLY = {
    "endpoint_id",
    "name",
    "status",
    "status_reason",
    "create_time",
    "update_time",
    "generation",
    "workers.available_workers",
    "workers.unavailable_workers",
}
NOT_SETTINGS = ("self", "endpoint_name", "update_if_exists")


def _settable_paths() -> set[str]:
    paths = set()
    for f in epb.ModelEndpoint.DESCRIPTOR.fields:
        if f.message_type in (
            epb.ResourceSettings.DESCRIPTOR,
            epb.WorkerSettings.DESCRIPTOR,
            epb.BatchSettings.DESCRIPTOR,
        ):
            paths |= {f"{f.name}.{sub.name}" for sub in f.message_type.fields}
        else:
            paths.add(f.name)
    return paths - OUTPUT_ONLY


def _create_parameters() -> dict[str, inspect.Parameter]:
    parameters = inspect.signature(launch.LaunchClient.create_model_endpoint).parameters
    return {k: p for k, p in parameters.items() if k not in NOT_SETTINGS}


def test_the_table_covers_every_settable_field_of_the_proto_once() -> None:
    paths = [f.path for f in ENDPOINT_FIELDS]
    assert len(paths) == len(set(paths))
    assert set(paths) == _settable_paths()


def test_the_table_matches_create_model_endpoints_keywords_and_defaults() -> None:
    parameters = _create_parameters()
    assert [f.keyword for f in ENDPOINT_FIELDS] == sorted(parameters, key=[f.keyword for f in ENDPOINT_FIELDS].index)
    assert {f.keyword for f in ENDPOINT_FIELDS} == set(parameters)
    for f in ENDPOINT_FIELDS:
        default = parameters[f.keyword].default
        assert (REQUIRED if default is inspect.Parameter.empty else default) == f.default, f.keyword


def test_per_worker_defaults_to_one_as_scale_launch_documents() -> None:
    assert _create_parameters()["per_worker"].default == 1


def test_edit_model_endpoint_takes_only_updatable_fields() -> None:
    parameters = inspect.signature(launch.LaunchClient.edit_model_endpoint).parameters
    keywords = set(parameters) - {"self", "model_endpoint"}
    assert keywords <= {f.keyword for f in ENDPOINT_FIELDS if f.updatable}


class Recorder:
    """Stands in for Connection.call: records each request, answers as the server would."""

    def __init__(self, client: launch.LaunchClient) -> None:
        self.client = client
        self.requests: list[Any] = []

    def __call__(self, method: Any, request: Any, *, idempotent: bool, timeout: float | None = None) -> Any:
        self.requests.append(request)
        stubs = self.client.connection.endpoints
        if method == stubs.GetModelEndpoint:
            return epb.GetModelEndpointResponse(endpoint=epb.ModelEndpoint(name=request.name))
        if method == stubs.UpdateModelEndpoint:
            return epb.UpdateModelEndpointResponse(endpoint=request.endpoint)
        if method == stubs.CreateModelEndpoint:
            return epb.CreateModelEndpointResponse(endpoint=request.endpoint)
        raise AssertionError(f"unexpected call {request!r}")


# A value for every setting, none of them a default, so none can pass unnoticed.
EVERY_SETTING: dict[str, Any] = {
    "model_bundle": "b",
    "cpus": 2,
    "memory": "1Gi",
    "storage": "2Gi",
    "gpus": 1,
    "min_workers": 2,
    "max_workers": 3,
    "per_worker": 4,
    "gpu_type": "nvidia-tesla-t4",
    "endpoint_type": "async",
    "post_inference_hooks": [launch.PostInferenceHooks.CALLBACK],
    "default_callback_url": "https://example.com/cb",
    "labels": {"team": "ml"},
    "task_expiry_seconds": 60,
    "max_queue_size": 7,
    "task_timeout_seconds": 30,
    "max_batch_size": 8,
    "max_batch_wait_ms": 5,
}


@pytest.fixture()
def client() -> launch.LaunchClient:
    return launch.LaunchClient(api_key="launch_key_x", endpoint="127.0.0.1:1", direct_route=False)


def test_every_setting_is_in_the_example() -> None:
    assert set(EVERY_SETTING) == {f.keyword for f in ENDPOINT_FIELDS}


def test_update_if_exists_keeps_every_updatable_setting(client: launch.LaunchClient) -> None:
    recorder = Recorder(client)
    client.connection.call = recorder  # type: ignore[method-assign]
    client.create_model_endpoint("ep", update_if_exists=True, **EVERY_SETTING)
    update = recorder.requests[-1]
    assert isinstance(update, epb.UpdateModelEndpointRequest)
    updatable = {f.path for f in ENDPOINT_FIELDS if f.updatable}
    assert set(update.update_mask.paths) == updatable
    sent = update.endpoint
    assert (sent.task_expiry_seconds, sent.max_queue_size, sent.workers.per_worker) == (60, 7, 4)
    assert (sent.resources.storage, sent.task_timeout_seconds, dict(sent.labels)) == ("2Gi", 30, {"team": "ml"})
    assert list(sent.post_inference_hooks) == ["callback"]
    assert (sent.batching.max_batch_size, sent.batching.max_wait_ms) == (8, 5)


def test_create_sends_every_setting_and_the_decorator_sees_each(client: launch.LaunchClient) -> None:
    recorder = Recorder(client)
    client.connection.call = recorder  # type: ignore[method-assign]
    seen: dict[str, Any] = {}
    client.register_endpoint_auth_decorator(lambda payload: seen.update(payload) or payload)
    client.create_model_endpoint("ep", **EVERY_SETTING)
    assert set(seen) == {"endpoint_name", "bundle_name"} | set(EVERY_SETTING) - {"model_bundle"}
    sent = recorder.requests[-1].endpoint
    assert (sent.name, sent.bundle_name, sent.endpoint_type) == ("ep", "b", epb.ENDPOINT_TYPE_ASYNC)
    assert (sent.resources.cpus, sent.resources.memory, sent.resources.gpus) == (2, "1Gi", 1)
    assert (sent.workers.min_workers, sent.workers.max_workers, sent.workers.per_worker) == (2, 3, 4)
    assert (sent.task_expiry_seconds, sent.max_queue_size, sent.task_timeout_seconds) == (60, 7, 30)
    assert sent.default_callback_url == "https://example.com/cb"
    assert (sent.batching.max_batch_size, sent.batching.max_wait_ms) == (8, 5)


def test_create_defaults_leave_optional_settings_unset(client: launch.LaunchClient) -> None:
    recorder = Recorder(client)
    client.connection.call = recorder  # type: ignore[method-assign]
    client.create_model_endpoint("ep", "b")
    sent = recorder.requests[-1].endpoint
    assert not sent.HasField("task_timeout_seconds")
    assert not sent.HasField("batching")
    assert (sent.task_expiry_seconds, sent.max_queue_size, sent.resources.storage) == (0, 0, "")
    assert (sent.resources.cpus, sent.resources.memory, sent.workers.per_worker) == (3, "8Gi", 1)


def test_edit_sends_only_the_batch_limit_given(client: launch.LaunchClient) -> None:
    """A zero wait is a value (start at once), not "unchanged"; the other limit is not in the mask."""
    recorder = Recorder(client)
    client.connection.call = recorder  # type: ignore[method-assign]
    client.edit_model_endpoint("ep", max_batch_wait_ms=0)
    update = recorder.requests[-1]
    assert list(update.update_mask.paths) == ["batching.max_wait_ms"]
    assert update.endpoint.batching.HasField("max_wait_ms") and update.endpoint.batching.max_wait_ms == 0
    assert not update.endpoint.batching.HasField("max_batch_size")


def test_the_record_shows_batch_limits_and_none_when_unset() -> None:
    unset = ModelEndpoint.from_proto(epb.ModelEndpoint(name="ep"))
    assert (unset.max_batch_size, unset.max_batch_wait_ms) == (None, None)
    only_wait = epb.ModelEndpoint(name="ep", batching=epb.BatchSettings(max_wait_ms=0))
    record = ModelEndpoint.from_proto(only_wait)
    assert (record.max_batch_size, record.max_batch_wait_ms) == (None, 0)
