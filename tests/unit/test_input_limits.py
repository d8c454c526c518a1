"""The domain's value checks on their own: the shared JSON reader, Kubernetes quantities, names,
requirements, endpoint settings and batch options. Also the replica's side: its own port's input
check (wire.messages.request_of) and the runtime's reading of args and app_config use the same
JSON reader, so a replica answers INVALID_ARGUMENT (or a FAILURE result), never UNKNOWN."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import grpc
import pytest
from launch.v1 import inference_pb2 as ipb

from launch_server.domain.batch_inputs import BatchInputs
from launch_server.domain.batch_jobs import BatchOptions, validate_options
from launch_server.domain.endpoints import EndpointSettings, EndpointType, validate_settings
from launch_server.domain.errors import InvalidArgument
from launch_server.domain.json_input import MAX_DEPTH, MAX_INT_DIGITS, parse_json, parse_json_object
from launch_server.domain.requests import InferenceRequest
from launch_server.domain.resources import MAX_QUANTITY_BYTES, parse_memory
from launch_server.domain.validation import (
    validate_http_url,
    validate_labels,
    validate_name,
    validate_requirements,
)
from launch_server.replica.bundle_runtime import BundleDescriptor, BundleRuntime, RuntimeConfig
from launch_server.storage.local import LocalStorage
from launch_server.wire.messages import request_of
from launch_server.wire.status import to_status

BAD_JSON = [
    ('{"a": NaN}', "NaN"),
    ('{"a": Infinity}', "Infinity"),
    ('{"a": -Infinity}', "Infinity"),
    ('{"a": 1e999}', "finite"),
    ('{"a": -1e400}', "finite"),
    ('{"a": ' + "7" * (MAX_INT_DIGITS + 1) + "}", "digits"),
    ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested"),
    ('{"a": ' + "{" * 60_000 + "}" * 60_000 + "}", "JSON"),
    ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "nested"),
    ("{nope", "not valid JSON"),
]


@pytest.mark.parametrize(("text", "why"), BAD_JSON)
def test_parse_json_refuses_for_the_field(text: str, why: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_json("x.args_json", text, 1 << 24)
    assert err.value.field == "x.args_json" and why in err.value.description


def test_parse_json_takes_what_the_contract_allows() -> None:
    deepest = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert parse_json("f", deepest, 1 << 20) is not None
    big = int("9" * MAX_INT_DIGITS)
    assert parse_json("f", json.dumps({"n": big, "x": 1.5e300, "s": "é"}), 1 << 20) == {
        "n": big,
        "x": 1.5e300,
        "s": "é",
    }


def test_parse_json_bounds_the_utf8_size() -> None:
    assert parse_json("f", json.dumps("é" * 5, ensure_ascii=False), 12) == "é" * 5  # 10 bytes of é and two quotes
    with pytest.raises(InvalidArgument, match="at most 11 bytes"):
        parse_json("f", json.dumps("é" * 5, ensure_ascii=False), 11)


def test_parse_json_object_names_the_type() -> None:
    with pytest.raises(InvalidArgument, match="keyword arguments, not a JSON list"):
        parse_json_object("f", "[1]", 100, "a JSON object of keyword arguments")


@pytest.mark.parametrize(
    ("quantity", "bytes_"),
    [("8Gi", 8 << 30), ("512Mi", 512 << 20), ("1G", 10**9), ("1e9", 10**9), (".5Gi", 1 << 29), ("1Pi", 1 << 50)],
)
def test_memory_quantities(quantity: str, bytes_: int) -> None:
    assert parse_memory("m", quantity) == bytes_


@pytest.mark.parametrize(
    "quantity",
    ["1e999999999", "1" * 5000, "8Gi\n", "2Pi", "1Ei", str(MAX_QUANTITY_BYTES + 1), "1e-999999999", "0e999", "8GB", ""],
)
def test_memory_quantities_out_of_bounds(quantity: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_memory("endpoint.resources.memory", quantity)
    assert err.value.field == "endpoint.resources.memory"
    assert len(err.value.message) < 300  # the quantity is not echoed at length


@pytest.mark.parametrize("name", ["ep\n", "ep\r", "ep ", "Ep", "-ep", "e" * 64])
def test_names_are_fully_matched(name: str) -> None:
    with pytest.raises(InvalidArgument):
        validate_name("endpoint.name", name)


@pytest.mark.parametrize("line", ["numpy\r--index-url x", "numpy\x00", "numpy\u202e", "numpy\tx", "-e ."])
def test_requirements_refuse_control_characters_and_options(line: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        validate_requirements("bundle.requirements", ("pandas", line))
    assert err.value.field == "bundle.requirements[1]"


def test_urls_and_labels() -> None:
    validate_http_url("u", "https://127.0.0.1/hook?a=1")
    for url in ["http://h/" + "a" * 2048, "http://h/\r\nX: y", "http://h/ x", "ftp://h/"]:
        with pytest.raises(InvalidArgument):
            validate_http_url("u", url)
    validate_labels("labels", {"team": "ml", "launch.batch_job": "a" * 32})
    for labels in [{"": "v"}, {"k": "v\n"}, {"k\x00": "v"}, {f"k{i}": "" for i in range(65)}]:
        with pytest.raises(InvalidArgument):
            validate_labels("labels", labels)


BASE = EndpointSettings(bundle_name="b", endpoint_type=EndpointType.ASYNC, min_workers=0)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"cpus": float("inf")}, "resources.cpus"),
        ({"cpus": float("-inf")}, "resources.cpus"),
        ({"cpus": 256.5}, "resources.cpus"),
        ({"storage": "1" * 5000}, "resources.storage"),
        ({"gpu_type": "nvidia-geforce-9000"}, "resources.gpu_type"),
        ({"per_worker": 101}, "workers.per_worker"),
        ({"per_worker": 11, "max_workers": 1000}, "workers.per_worker"),
        ({"post_inference_hooks": ("callback",) * 9}, "post_inference_hooks"),
        ({"task_expiry_seconds": 10**12}, "task_expiry_seconds"),
        ({"task_expiry_seconds": 0}, "task_expiry_seconds"),
        ({"max_queue_size": 2**63 - 1}, "max_queue_size"),
    ],
)
def test_endpoint_settings_bounds(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        validate_settings(dataclasses.replace(BASE, **changes))  # type: ignore[arg-type]
    assert err.value.field == f"endpoint.{field}"


def test_endpoint_settings_at_the_bounds_are_accepted() -> None:
    validate_settings(
        dataclasses.replace(
            BASE,
            cpus=256,
            memory="1Pi",
            max_workers=100,
            per_worker=100,
            task_expiry_seconds=30 * 86400,
            max_queue_size=10_000_000,
        )
    )
    validate_settings(dataclasses.replace(BASE, max_workers=1000, per_worker=10))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"cpus": float("inf")}, "options.cpus"),
        ({"cpus": float("nan")}, "options.cpus"),
        ({"memory": "1e999999999"}, "options.memory"),
        ({"gpu_type": "x" * 10_000}, "options.gpu_type"),
        ({"pyspark_max_executors": 100, "max_workers": 101}, "options.pyspark_max_executors"),
    ],
)
def test_batch_options_bounds(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        validate_options(dataclasses.replace(BatchOptions(), **changes))  # type: ignore[arg-type]
    assert err.value.field == field


def test_batch_options_at_the_bounds_make_valid_endpoint_settings() -> None:
    """A job's options become its endpoint's settings, so options the job accepts never fail there."""
    options = BatchOptions(
        cpus=256, memory="1Pi", max_workers=100, pyspark_partition_size=10_000, pyspark_max_executors=100
    )
    validate_options(options)
    validate_settings(
        EndpointSettings(
            bundle_name="b",
            endpoint_type=EndpointType.ASYNC,
            cpus=options.cpus,
            memory=options.memory,
            min_workers=options.max_workers,
            max_workers=options.max_workers,
            per_worker=options.pyspark_max_executors,
            task_expiry_seconds=7 * 86400,
            max_queue_size=1_000_001,
        )
    )


@pytest.mark.parametrize(("text", "why"), BAD_JSON[:7])
def test_batch_args_inputs_use_the_same_reader(tmp_path: Path, text: str, why: str) -> None:
    sources = BatchInputs(LocalStorage(tmp_path / "storage"))
    with pytest.raises(InvalidArgument) as err:
        asyncio.run(sources.from_args(['{"ok": 1}', text]))
    assert err.value.field == "args.args_json[1]" and why in err.value.description


# ----- the replica's side -----


@pytest.mark.parametrize(("text", "why"), BAD_JSON)
def test_replica_port_answers_invalid_argument(text: str, why: str) -> None:
    """What ReplicaListener.predict and the task channel run on each request before the runtime."""
    request = ipb.PredictRequest(endpoint_name="ep", input=ipb.RequestInput(args_json=text))
    with pytest.raises(InvalidArgument) as err:
        request_of(request)
    assert err.value.field == "input.args_json"
    assert to_status(err.value).code == grpc.StatusCode.INVALID_ARGUMENT


def test_replica_port_refuses_control_characters_in_urls() -> None:
    with pytest.raises(InvalidArgument) as err:
        request_of(ipb.PredictRequest(input=ipb.RequestInput(url="http://127.0.0.1/x\r\nHost: y")))
    assert err.value.field == "input.url"


def test_large_error_messages_fit_in_a_status() -> None:
    status = to_status(InvalidArgument("f" * 10_000, "x" * 100_000))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert len(status.details) <= 1024
    assert sum(len(value) for _, value in status.trailing_metadata) < 8192  # gRPC's default trailer limit is 8 KiB


@pytest.fixture
def runtime(tmp_path: Path) -> BundleRuntime:
    from launch.packaging import pickle_bundle

    storage = LocalStorage(tmp_path / "storage")
    data, metadata = pickle_bundle("PREDICT_FN_OR_CLS", lambda **kw: sorted(kw), None, None, None, None)
    descriptor = BundleDescriptor(
        bundle_id="b1",
        name="b",
        packaging_type="CLOUDPICKLE",
        form="PREDICT_FN_OR_CLS",
        location=storage.put_bytes("bundles/b1.pkl", data),
        metadata=metadata,
        app_config_json="",
        python_version="",
    )
    config = RuntimeConfig(storage_url=storage.root_url, work_dir=str(tmp_path / "work"))
    return BundleRuntime(descriptor, config)


@pytest.mark.parametrize(("text", "why"), BAD_JSON[:8])
def test_runtime_answers_failure_for_unreadable_args(runtime: BundleRuntime, text: str, why: str) -> None:
    answer = runtime.predict(InferenceRequest(args_json=text, return_pickled=False))
    assert answer.state == "FAILURE" and why in answer.traceback
    assert runtime.predict(InferenceRequest(args_json='{"b": 1, "a": 2}', return_pickled=False)).result == '["a", "b"]'
