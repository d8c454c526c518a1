"""Sends a real server (with its own local Ray) every kind of bad input the hardening work covers
and prints, for each, the gRPC status and field it got: the table in docs/reliability.md.

    .venv/bin/python -m benchmarks.bad_inputs [--json out.json]

Nothing here is timed; it records what a caller sees. Every probe goes to 127.0.0.1 only, and the
script ends the server (which ends its Ray) by process id."""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import launch
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from launch.v1 import batch_job_pb2 as bjpb
from launch.v1 import batch_job_pb2_grpc as bjgrpc
from launch.v1 import inference_pb2 as ipb
from launch.v1 import inference_pb2_grpc as igrpc
from launch.v1 import model_bundle_pb2 as bpb
from launch.v1 import model_bundle_pb2_grpc as bgrpc
from launch.v1 import model_endpoint_pb2 as epb
from launch.v1 import model_endpoint_pb2_grpc as egrpc
from launch.v1 import task_pb2 as tpb
from launch.v1 import task_pb2_grpc as tgrpc

from launch_server.domain.json_input import MAX_ARGS_JSON_BYTES
from launch_server.domain.ownership import owner_tag
from tests.constants import MIB
from tests.support import ServerHandle, start_server

ENV = {"framework_type": "pytorch", "pytorch_image_tag": "2.1.0"}


@dataclass
class Outcome:
    probe: str
    code: str
    field: str
    message: str


def status_of(call: Callable[[], object]) -> tuple[str, str, str]:
    """(status code name, BadRequest field or "", message) of one call."""
    try:
        result = call()
        if hasattr(result, "__iter__") and not isinstance(result, (bytes, str)):
            for _ in result:  # type: ignore[union-attr]
                pass
    except grpc.RpcError as exc:
        field = ""
        status = rpc_status.from_call(exc)  # type: ignore[arg-type]
        for detail in status.details if status else ():
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                field = bad.field_violations[0].field if bad.field_violations else ""
        return exc.code().name, field, (exc.details() or "")[:90]
    return "OK", "", ""


def endpoint_message(name: str, **changes: object) -> epb.ModelEndpoint:
    message = epb.ModelEndpoint(
        name=name,
        bundle_name="echo",
        endpoint_type=epb.ENDPOINT_TYPE_ASYNC,
        resources=epb.ResourceSettings(cpus=1, memory="256Mi"),
        workers=epb.WorkerSettings(min_workers=0, max_workers=1, per_worker=1),
    )
    for path, value in changes.items():
        target = message
        *parents, leaf = path.split("__")
        for parent in parents:
            target = getattr(target, parent)
        if isinstance(value, dict):
            getattr(target, leaf).update(value)
        else:
            setattr(target, leaf, value)
    return message


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("pkg/__init__.py", "")
        archive.writestr("pkg/m.py", "def f(x):\n    return x\n\ndef g():\n    return None\n")
        archive.writestr("pkg/big.bin", b"\0" * (600 * MIB))  # 600 MiB that packs to under 1 MiB
    return buffer.getvalue()


def probes(server: ServerHandle, key: str, route: epb.GetModelEndpointRouteResponse) -> list[tuple[str, Callable]]:
    md = (("authorization", f"Bearer {key}"),)
    channel = server.channel()
    bundles, endpoints = bgrpc.ModelBundleServiceStub(channel), egrpc.ModelEndpointServiceStub(channel)
    infer, tasks = igrpc.InferenceServiceStub(channel), tgrpc.TaskServiceStub(channel)
    jobs = bjgrpc.BatchJobServiceStub(channel)
    storage = (server.data_dir / "storage").resolve()
    mine = f"{storage.as_uri()}/results/{owner_tag('dev')}"

    def create(**changes: object) -> Callable:
        request = epb.CreateModelEndpointRequest(endpoint=endpoint_message("bad-ep", **changes))
        return lambda: endpoints.CreateModelEndpoint(request, metadata=md, timeout=30)

    def predict(args_json: str, replica: bool = False) -> Callable:
        request = ipb.PredictRequest(endpoint_name="echo-sync", input=ipb.RequestInput(args_json=args_json))
        if not replica:
            return lambda: infer.Predict(request, metadata=md, timeout=60)
        direct = igrpc.InferenceServiceStub(grpc.insecure_channel(route.replica_addresses[0]))
        token = (("authorization", f"Bearer {route.route_token}"),)
        return lambda: direct.Predict(request, metadata=token, timeout=60)

    def download(url: str) -> Callable:
        return lambda: tasks.DownloadResult(tpb.DownloadResultRequest(result_url=url), metadata=md, timeout=30)

    def register(location: str) -> Callable:
        spec = bpb.ModelBundleSpec(
            name="pointed",
            packaging_type=bpb.PACKAGING_TYPE_CLOUDPICKLE,
            form=bpb.BUNDLE_FORM_PREDICT_FN_OR_CLS,
            python_version="3.11",
            env_params=ENV,
            location=location,
        )
        return lambda: bundles.CreateModelBundle(bpb.CreateModelBundleRequest(bundle=spec), metadata=md, timeout=30)

    def batch_from(location: str) -> Callable:
        request = bjpb.CreateBatchJobRequest(
            bundle_name="echo", input_location=location, serialization_format=bjpb.SERIALIZATION_FORMAT_JSON
        )
        return lambda: jobs.CreateBatchJob(request, metadata=md, timeout=120)

    def task(callback_url: str = "", args_json: str = "{}") -> Callable:
        spec = tpb.TaskSpec(input=ipb.RequestInput(args_json=args_json), callback_url=callback_url)
        request = tpb.CreateTaskRequest(endpoint_name="echo-async", task=spec)
        return lambda: tasks.CreateTask(request, metadata=md, timeout=30)

    def upload(data: bytes) -> Callable:
        import hashlib

        spec = bpb.ModelBundleSpec(
            name="bomb",
            packaging_type=bpb.PACKAGING_TYPE_ZIP,
            python_version="3.11",
            env_params=ENV,
            metadata={"load_predict_fn_module_path": "pkg.m.f", "load_model_fn_module_path": "pkg.m.g"},
        )
        header = bpb.UploadModelBundleHeader(bundle=spec, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())

        def chunks():  # type: ignore[no-untyped-def]
            yield bpb.UploadModelBundleRequest(header=header)
            for start in range(0, len(data), MIB):
                yield bpb.UploadModelBundleRequest(chunk=data[start : start + MIB])

        return lambda: bundles.UploadModelBundle(chunks(), metadata=md, timeout=60)

    hostile_csv = storage / "self-hosted" / "hostile.csv"
    hostile_csv.parent.mkdir(parents=True, exist_ok=True)
    with open(hostile_csv, "w") as f:
        f.write("url\n")
        f.write("http://127.0.0.1:9/x\n" * 1_000_001)
    giant_field = storage / "self-hosted" / "giant.csv"
    giant_field.write_text("url\n" + "a" * (64 * MIB))
    return [
        (
            "DownloadResult <my results>/%2E%2E/%2E%2E/%2E%2E/dev_api_key",
            download(f"{mine}/%2E%2E/%2E%2E/%2E%2E/dev_api_key"),
        ),
        ("DownloadResult <my results>/%252E%252E/... (double-encoded)", download(f"{mine}/%252E%252E/x")),
        ("DownloadResult <my results>/..%2F<other owner>/r.pkl", download(f"{mine}/..%2F{owner_tag('x')}/r.pkl")),
        ("DownloadResult file:///.../launch.db (absolute)", download((server.data_dir / "launch.db").as_uri())),
        (
            "CreateModelBundle location <storage>/x/%2E%2E/bundles/<id>",
            register(f"{storage.as_uri()}/x/%2E%2E/bundles/0"),
        ),
        ("CreateModelBundle location with backslashes", register(f"{storage.as_uri()}\\..\\..\\launch.db")),
        (
            "CreateBatchJob input_location <storage>/%2E%2E/launch.db",
            batch_from(f"{storage.as_uri()}/%2E%2E/launch.db"),
        ),
        ("CreateBatchJob CSV of 1,000,001 rows", batch_from(hostile_csv.as_uri())),
        ("CreateBatchJob CSV with one 64 MiB field", batch_from(giant_field.as_uri())),
        ('endpoint memory "1e999999999"', create(resources__memory="1e999999999")),
        ("endpoint memory of 5,000 digits", create(resources__memory="9" * 5000)),
        ("endpoint cpus = inf", create(resources__cpus=float("inf"))),
        ("endpoint cpus = nan", create(resources__cpus=float("nan"))),
        ("endpoint per_worker = 2^31-1", create(workers__per_worker=2**31 - 1)),
        ("endpoint max_workers = 1,000,001", create(workers__max_workers=1_000_001)),
        ("endpoint max_queue_size = 10^15", create(max_queue_size=10**15)),
        ("endpoint task_expiry_seconds = 10^12", create(task_expiry_seconds=10**12)),
        ("endpoint task_timeout_seconds = 10^9", create(task_timeout_seconds=10**9)),
        ("endpoint with 65 labels", create(labels={f"k{i}": "v" for i in range(65)})),
        (
            'endpoint name "bad-ep\\n"',
            lambda: endpoints.CreateModelEndpoint(
                epb.CreateModelEndpointRequest(endpoint=endpoint_message("bad-ep\n")), metadata=md, timeout=30
            ),
        ),
        (
            "bundle requirement with a carriage return",
            lambda: bundles.CreateModelBundle(
                bpb.CreateModelBundleRequest(
                    bundle=bpb.ModelBundleSpec(
                        name="req",
                        packaging_type=bpb.PACKAGING_TYPE_CLOUDPICKLE,
                        form=bpb.BUNDLE_FORM_PREDICT_FN_OR_CLS,
                        python_version="3.11",
                        env_params=ENV,
                        requirements=["numpy\r--index-url=http://x"],
                        location=f"{storage.as_uri()}/self-hosted/none.pkl",
                    )
                ),
                metadata=md,
                timeout=30,
            ),
        ),
        (
            "bundle app_config_json nested 100,000 deep",
            lambda: bundles.CreateModelBundle(
                bpb.CreateModelBundleRequest(
                    bundle=bpb.ModelBundleSpec(
                        name="cfg",
                        packaging_type=bpb.PACKAGING_TYPE_CLOUDPICKLE,
                        form=bpb.BUNDLE_FORM_PREDICT_FN_OR_CLS,
                        python_version="3.11",
                        env_params=ENV,
                        app_config_json='{"a": ' + deep_json(100_000) + "}",
                        location=f"{storage.as_uri()}/self-hosted/none.pkl",
                    )
                ),
                metadata=md,
                timeout=30,
            ),
        ),
        ("zip bundle unpacking to 600 MiB", upload(zip_bomb())),
        ("Predict args_json nested 100,000 deep", predict('{"x": ' + deep_json(100_000) + "}")),
        ("Predict args_json with a 5,000-digit integer", predict('{"x": ' + "9" * 5000 + "}")),
        ("Predict args_json with NaN", predict('{"x": NaN}')),
        ("Predict args_json over 16 MiB", predict('{"x": "' + "a" * MAX_ARGS_JSON_BYTES + '"}')),
        ("replica port: Predict args_json nested 100,000 deep", predict('{"x": ' + deep_json(100_000) + "}", True)),
        ("replica port: Predict args_json with a 5,000-digit integer", predict('{"x": ' + "9" * 5000 + "}", True)),
        ("CreateTask callback_url file:///etc/passwd", task("file:///etc/passwd")),
        (
            "CreateTask callback_url http://169.254.169.254/ (link-local; refused at delivery)",
            task("http://169.254.169.254/latest"),
        ),
        (
            "WatchTasks with 10,001 ids",
            lambda: tasks.WatchTasks(
                tpb.WatchTasksRequest(task_ids=[f"t{i}" for i in range(10_001)]), metadata=md, timeout=30
            ),
        ),
        (
            "a made-up API key (not the key format)",
            lambda: endpoints.ListModelEndpoints(
                epb.ListModelEndpointsRequest(), metadata=(("authorization", "Bearer " + "x" * 40),), timeout=30
            ),
        ),
        (
            "a well-formed API key no server issued",
            lambda: endpoints.ListModelEndpoints(
                epb.ListModelEndpointsRequest(),
                metadata=(("authorization", "Bearer lk_0123456789ab_" + "A" * 43),),
                timeout=30,
            ),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", help="also write the table here")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="launch-bad-inputs-"))
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ["RAY_TMPDIR"] = str(root / "ray")
    server = start_server(root / "data", extra_env={"LAUNCH_SERVING": "1", "LAUNCH_RAY_NUM_CPUS": "4"})
    try:
        key = (server.data_dir / "dev_api_key").read_text().strip()
        client = launch.LaunchClient(api_key=key, endpoint=server.address)
        bundle = client.create_model_bundle("echo", ENV, predict_fn_or_cls=lambda **kw: kw, requirements=[])
        sync = client.create_model_endpoint(
            "echo-sync", bundle, cpus=1, memory="256Mi", min_workers=1, max_workers=1, per_worker=1
        )
        client.create_model_endpoint(
            "echo-async", bundle, endpoint_type="async", cpus=1, memory="256Mi", min_workers=0, max_workers=1
        )
        deadline = time.monotonic() + 300
        while sync.status() != "READY" and time.monotonic() < deadline:
            time.sleep(0.5)
        stub = egrpc.ModelEndpointServiceStub(server.channel())
        md = (("authorization", f"Bearer {key}"),)
        route = stub.GetModelEndpointRoute(epb.GetModelEndpointRouteRequest(name="echo-sync"), metadata=md)
        while not route.replica_addresses and time.monotonic() < deadline:
            time.sleep(0.5)
            route = stub.GetModelEndpointRoute(epb.GetModelEndpointRouteRequest(name="echo-sync"), metadata=md)
        outcomes = []
        for name, call in probes(server, key, route):
            code, field, message = status_of(call)
            outcomes.append(Outcome(name, code, field, message))
            print(f"{name:68} {code:20} {field}")
        alive = status_of(lambda: stub.ListModelEndpoints(epb.ListModelEndpointsRequest(), metadata=md))
        print(f"{'the server afterwards: ListModelEndpoints':68} {alive[0]}")
        if args.json:
            Path(args.json).write_text(json.dumps([o.__dict__ for o in outcomes], indent=1))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
