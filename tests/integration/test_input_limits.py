"""Every number and string a client sends has a documented upper bound (docs/limits.md), and bad
input is INVALID_ARGUMENT naming the field, never INTERNAL or UNKNOWN, and writes nothing. Real
servers (no Ray) on SQLite with local storage and on PostgreSQL with moto S3: each request is
refused by the domain layer before any serving layer would be involved."""

from __future__ import annotations

import base64
import json
import zlib

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from launch.v1 import batch_job_pb2 as bjpb
from launch.v1 import batch_job_pb2_grpc as bjgrpc
from launch.v1 import inference_pb2 as ipb
from launch.v1 import model_bundle_pb2 as bpb
from launch.v1 import model_bundle_pb2_grpc as bgrpc
from launch.v1 import model_endpoint_pb2 as epb
from launch.v1 import model_endpoint_pb2_grpc as egrpc
from launch.v1 import task_pb2 as tpb
from launch.v1 import task_pb2_grpc as tgrpc

from launch_server.domain.batch_limits import MAX_BATCH_SIZE, MAX_BATCH_WAIT_MS
from tests.support import ServerHandle

ENV = {"framework_type": "pytorch", "pytorch_image_tag": "2.1.0"}
OWNER = "limits"
DEEP = "[" * 100_000 + "]" * 100_000


def auth(server: ServerHandle) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {server.key_for(OWNER)}"),)


def refusal(call) -> tuple[grpc.StatusCode, str]:  # type: ignore[no-untyped-def]
    """The status code and the BadRequest field of a refused call."""
    with pytest.raises(grpc.RpcError) as err:
        call()
    status = rpc_status.from_call(err.value)
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            return err.value.code(), bad.field_violations[0].field
    return err.value.code(), ""


def assert_refused(call, field: str) -> None:  # type: ignore[no-untyped-def]
    code, named = refusal(call)
    assert (code, named.split("[")[0]) == (grpc.StatusCode.INVALID_ARGUMENT, field)


def endpoint(**changes: object) -> epb.ModelEndpoint:
    m = epb.ModelEndpoint(
        name="lim-ep",
        bundle_name="lim-bundle",
        endpoint_type=epb.ENDPOINT_TYPE_ASYNC,
        resources=epb.ResourceSettings(cpus=1, memory="1Gi"),
        workers=epb.WorkerSettings(min_workers=0, max_workers=1, per_worker=1),
    )
    for path, value in changes.items():
        target = m
        *parents, leaf = path.split(".")
        for parent in parents:
            target = getattr(target, parent)
        if isinstance(value, dict):
            getattr(target, leaf).update(value)
        elif isinstance(value, list):
            getattr(target, leaf).extend(value)
        else:
            setattr(target, leaf, value)
    return m


# (what is set on the ModelEndpoint, the field named): shared by create and update.
BAD_SETTINGS = [
    ({"resources.cpus": float("inf")}, "resources.cpus"),
    ({"resources.cpus": float("nan")}, "resources.cpus"),
    ({"resources.cpus": 257.0}, "resources.cpus"),
    ({"resources.memory": "1e999999999"}, "resources.memory"),
    ({"resources.memory": "1" * 5000}, "resources.memory"),
    ({"resources.memory": "8Gi\n"}, "resources.memory"),
    ({"resources.memory": "2Pi"}, "resources.memory"),
    ({"resources.storage": "1e999999999"}, "resources.storage"),
    ({"resources.gpus": 17}, "resources.gpus"),
    ({"resources.gpu_type": "x" * 10_000}, "resources.gpu_type"),
    ({"workers.min_workers": 1001, "workers.max_workers": 1001}, "workers.min_workers"),
    ({"workers.max_workers": 1001}, "workers.max_workers"),
    ({"workers.per_worker": 101}, "workers.per_worker"),
    ({"workers.per_worker": 2**31 - 1}, "workers.per_worker"),
    ({"workers.per_worker": 100, "workers.max_workers": 101}, "workers.per_worker"),
    ({"post_inference_hooks": ["callback"] * 9}, "post_inference_hooks"),
    ({"default_callback_url": "http://127.0.0.1/" + "a" * 3000}, "default_callback_url"),
    ({"default_callback_url": "http://127.0.0.1/\r\nHost: elsewhere"}, "default_callback_url"),
    ({"labels": {f"k{i}": "v" for i in range(65)}}, "labels"),
    ({"labels": {"k" * 64: "v"}}, "labels"),
    ({"labels": {"team": "v" * 64}}, "labels"),
    ({"labels": {"team": "ml\n"}}, "labels"),
    ({"task_expiry_seconds": 10**12}, "task_expiry_seconds"),
    ({"task_expiry_seconds": 2**63 - 1}, "task_expiry_seconds"),
    ({"task_expiry_seconds": 30 * 86400 + 1}, "task_expiry_seconds"),
    ({"max_queue_size": 10_000_001}, "max_queue_size"),
    ({"max_queue_size": 2**63 - 1}, "max_queue_size"),
    ({"batching.max_batch_size": 0}, "batching.max_batch_size"),
    ({"batching.max_batch_size": MAX_BATCH_SIZE + 1}, "batching.max_batch_size"),
    ({"batching.max_batch_size": 2**31 - 1}, "batching.max_batch_size"),
    ({"batching.max_wait_ms": -1}, "batching.max_wait_ms"),
    ({"batching.max_wait_ms": MAX_BATCH_WAIT_MS + 1}, "batching.max_wait_ms"),
]


@pytest.fixture(scope="module")
def stubs(server: ServerHandle) -> dict[str, object]:
    channel = server.channel()
    return {
        "bundles": bgrpc.ModelBundleServiceStub(channel),
        "endpoints": egrpc.ModelEndpointServiceStub(channel),
        "tasks": tgrpc.TaskServiceStub(channel),
        "batch": bjgrpc.BatchJobServiceStub(channel),
    }


@pytest.fixture(scope="module")
def existing_endpoint(server: ServerHandle, stubs) -> str:  # type: ignore[no-untyped-def]
    """A bundle (uploaded bytes; the server never unpickles them) and an endpoint to edit."""
    import hashlib

    data = b"not unpickled by the server"
    spec = bpb.ModelBundleSpec(
        name="lim-bundle",
        packaging_type=bpb.PACKAGING_TYPE_CLOUDPICKLE,
        form=bpb.BUNDLE_FORM_PREDICT_FN_OR_CLS,
        python_version="3.11",
        env_params=ENV,
    )
    header = bpb.UploadModelBundleHeader(bundle=spec, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    messages = iter([bpb.UploadModelBundleRequest(header=header), bpb.UploadModelBundleRequest(chunk=data)])
    stubs["bundles"].UploadModelBundle(messages, metadata=auth(server), timeout=30)
    stubs["endpoints"].CreateModelEndpoint(
        epb.CreateModelEndpointRequest(endpoint=endpoint(name="lim-edit")), metadata=auth(server), timeout=30
    )
    return "lim-edit"


def names_listed(server: ServerHandle, stubs) -> list[str]:  # type: ignore[no-untyped-def]
    listed = stubs["endpoints"].ListModelEndpoints(epb.ListModelEndpointsRequest(), metadata=auth(server), timeout=30)
    return sorted(e.name for e in listed.endpoints)


@pytest.mark.parametrize(("changes", "field"), BAD_SETTINGS)
def test_endpoint_create_refuses_out_of_bounds_settings(server, stubs, changes, field) -> None:  # type: ignore[no-untyped-def]
    name = f"lim-ep-{zlib.crc32(repr(changes).encode())}"  # one name per case: an accepted case stays alone
    request = epb.CreateModelEndpointRequest(endpoint=endpoint(name=name, **changes))
    assert_refused(
        lambda: stubs["endpoints"].CreateModelEndpoint(request, metadata=auth(server), timeout=30), f"endpoint.{field}"
    )
    assert name not in names_listed(server, stubs)  # nothing half-written


@pytest.mark.parametrize(("changes", "field"), BAD_SETTINGS)
def test_endpoint_update_refuses_out_of_bounds_settings(server, stubs, existing_endpoint, changes, field) -> None:  # type: ignore[no-untyped-def]
    before = stubs["endpoints"].GetModelEndpoint(
        epb.GetModelEndpointRequest(name=existing_endpoint), metadata=auth(server), timeout=30
    )
    request = epb.UpdateModelEndpointRequest(
        endpoint=endpoint(name=existing_endpoint, **changes),
        update_mask=field_mask_pb2.FieldMask(paths=[p for p in changes if not p.startswith("workers.")] or ["workers"]),
    )
    assert_refused(
        lambda: stubs["endpoints"].UpdateModelEndpoint(request, metadata=auth(server), timeout=30), f"endpoint.{field}"
    )
    after = stubs["endpoints"].GetModelEndpoint(
        epb.GetModelEndpointRequest(name=existing_endpoint), metadata=auth(server), timeout=30
    )
    assert after.endpoint.generation == before.endpoint.generation


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "lim-ep\n"}, "endpoint.name"),
        ({"bundle_name": "lim-bundle\n"}, "endpoint.bundle_name"),
    ],
)
def test_endpoint_names_with_a_trailing_newline_are_refused(server, stubs, changes, field) -> None:  # type: ignore[no-untyped-def]
    request = epb.CreateModelEndpointRequest(endpoint=endpoint(**changes))
    assert_refused(lambda: stubs["endpoints"].CreateModelEndpoint(request, metadata=auth(server), timeout=30), field)


def bundle_spec(**changes: object) -> bpb.ModelBundleSpec:
    spec = bpb.ModelBundleSpec(
        name="lim-self-hosted",
        packaging_type=bpb.PACKAGING_TYPE_CLOUDPICKLE,
        form=bpb.BUNDLE_FORM_PREDICT_FN_OR_CLS,
        python_version="3.11",
        env_params=ENV,
        location="s3://nowhere/x",
    )
    for key, value in changes.items():
        if isinstance(value, dict):
            getattr(spec, key).update(value)
        elif isinstance(value, list):
            getattr(spec, key).extend(value)
        else:
            setattr(spec, key, value)
    return spec


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "lim-bundle\n"}, "bundle.name"),
        ({"python_version": "3.11\n"}, "bundle.python_version"),
        ({"requirements": ["numpy==1.26\rgevil"]}, "bundle.requirements"),
        ({"requirements": ["numpy==1.26\x00"]}, "bundle.requirements"),
        ({"requirements": ["numpy\n--index-url http://evil"]}, "bundle.requirements"),
        ({"env_params": {"extra": "v" * 257}}, "bundle.env_params.extra"),
        ({"env_params": {f"k{i}": "v" for i in range(64)}}, "bundle.env_params"),
        ({"metadata": {"source": "x" * ((1 << 20) + 1)}}, "bundle.metadata.source"),
        ({"app_config_json": '{"a": NaN}'}, "bundle.app_config_json"),
        ({"app_config_json": '{"a": 1e999}'}, "bundle.app_config_json"),
        ({"app_config_json": '{"a": ' + "9" * 5000 + "}"}, "bundle.app_config_json"),
        ({"app_config_json": '{"a":' * 50_000 + "1" + "}" * 50_000}, "bundle.app_config_json"),
        ({"app_config_json": json.dumps({"a": "x" * (1 << 20)})}, "bundle.app_config_json"),
    ],
)
def test_bundle_spec_bad_input_names_the_field(server, stubs, changes, field) -> None:  # type: ignore[no-untyped-def]
    request = bpb.CreateModelBundleRequest(bundle=bundle_spec(**changes))
    code, named = refusal(lambda: stubs["bundles"].CreateModelBundle(request, metadata=auth(server), timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert named.split("[")[0] == field


def args_input(args_json: str) -> ipb.RequestInput:
    return ipb.RequestInput(args_json=args_json)


BAD_ARGS = [
    '{"x": NaN}',
    '{"x": -Infinity}',
    '{"x": 1e999}',
    '{"x": ' + "1" * 5000 + "}",
    '{"x": ' + DEEP + "}",
    '{"x": ' + "[" * 101 + "]" * 101 + "}",
    "[1, 2]",
    json.dumps({"x": "y" * (16 << 20)}),
]


@pytest.mark.parametrize("args_json", BAD_ARGS, ids=range(len(BAD_ARGS)))
def test_task_args_json_is_refused_for_its_field(server, stubs, args_json) -> None:  # type: ignore[no-untyped-def]
    request = tpb.CreateTaskRequest(endpoint_name="lim-ep", task=tpb.TaskSpec(input=args_input(args_json)))
    assert_refused(
        lambda: stubs["tasks"].CreateTask(request, metadata=auth(server), timeout=60), "task.input.args_json"
    )


@pytest.mark.parametrize(
    ("options", "labels", "field"),
    [
        ({"cpus": float("inf")}, {}, "options.cpus"),
        ({"cpus": 1000.0}, {}, "options.cpus"),
        ({"memory": "1e999999999"}, {}, "options.memory"),
        ({"memory": "1" * 5000}, {}, "options.memory"),
        ({"gpus": 17}, {}, "options.gpus"),
        ({"max_workers": 1001}, {}, "options.max_workers"),
        ({"pyspark_partition_size": 10_001}, {}, "options.pyspark_partition_size"),
        ({"pyspark_max_executors": 101}, {}, "options.pyspark_max_executors"),
        ({"pyspark_max_executors": 100, "max_workers": 101}, {}, "options.pyspark_max_executors"),
        ({}, {f"k{i}": "v" for i in range(65)}, "labels"),
        ({}, {"k": "v\r"}, "labels"),
    ],
)
def test_batch_options_and_labels_name_the_field(server, stubs, options, labels, field) -> None:  # type: ignore[no-untyped-def]
    request = bjpb.CreateBatchJobRequest(
        bundle_name="lim-bundle",
        serialization_format=bjpb.SERIALIZATION_FORMAT_JSON,
        urls=bjpb.UrlList(urls=["http://127.0.0.1:9/x"]),
        options=bjpb.BatchTaskOptions(**options),
        labels=labels,
    )
    assert_refused(lambda: stubs["batch"].CreateBatchJob(request, metadata=auth(server), timeout=30), field)


def test_page_size_and_page_token_bounds(server, stubs) -> None:  # type: ignore[no-untyped-def]
    list_endpoints = stubs["endpoints"].ListModelEndpoints
    for request, field in [
        (epb.ListModelEndpointsRequest(page_size=1001), "page_size"),
        (epb.ListModelEndpointsRequest(page_size=-1), "page_size"),
        (epb.ListModelEndpointsRequest(page_token="A" * 10_000), "page_token"),
        (epb.ListModelEndpointsRequest(page_token=base64.urlsafe_b64encode(b"[" * 2000).decode()), "page_token"),
    ]:
        assert_refused(lambda r=request: list_endpoints(r, metadata=auth(server), timeout=30), field)
    code, field = refusal(
        lambda: stubs["bundles"].ListModelBundles(
            bpb.ListModelBundlesRequest(page_size=2**31 - 1), metadata=auth(server), timeout=30
        )
    )
    assert (code, field) == (grpc.StatusCode.INVALID_ARGUMENT, "page_size")
