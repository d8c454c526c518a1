"""Endpoints on Ray Serve end to end: a real server joined to the session's two-node Ray cluster,
driven through the SDK and raw stubs, on SQLite+local and PostgreSQL+S3."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import launch
import pytest
from launch.v1 import inference_pb2 as ipb
from launch.v1 import inference_pb2_grpc as igrpc
from launch.v1 import model_endpoint_pb2 as epb
from launch.v1 import model_endpoint_pb2_grpc as egrpc

from tests.support import ServerHandle

ENV = {"framework_type": "pytorch", "pytorch_image_tag": "2.1.0"}
SMALL = {"cpus": 1, "memory": "256Mi"}


def client_for(server: ServerHandle, owner: str = "alice") -> launch.LaunchClient:
    return launch.LaunchClient(api_key=server.key_for(owner), endpoint=server.address)


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.2) -> object:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def wait_status(ep: launch.Endpoint, wanted: str, timeout: float = 90) -> None:
    def check() -> bool:
        status = ep.status()
        if status == "UPDATE_FAILED" and wanted != "UPDATE_FAILED":
            raise AssertionError(f"{ep} failed: {ep.model_endpoint.status_reason}")
        return status == wanted

    wait_for(check, timeout, f"{ep} to be {wanted}")


def args(**kw: object) -> launch.EndpointRequest:
    return launch.EndpointRequest(args=kw, return_pickled=False)


def make_echo() -> Callable:
    def echo(**kwargs):  # type: ignore[no-untyped-def]
        return kwargs

    return echo


@pytest.fixture(scope="module")
def echo_bundle(serving_server: ServerHandle) -> launch.ModelBundle:
    return client_for(serving_server).create_model_bundle("echo", ENV, predict_fn_or_cls=make_echo(), requirements=[])


# ---- every bundle form, args and url requests, results ----------------------------------------


def test_each_bundle_form_serves(serving_server: ServerHandle, echo_bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client = client_for(serving_server)

    class Counter:
        """A callable class: instantiated once per replica."""

        def __init__(self) -> None:
            self.calls = 0

        def __call__(self, x: int) -> dict:
            self.calls += 1
            return {"x": x, "calls": self.calls}

    def load_predict_fn(model, app_config=None):  # type: ignore[no-untyped-def]
        scale = (app_config or {}).get("scale", 1)
        return lambda x: model["base"] + x * scale

    root = tmp_path / "my_root"
    (root / "my_module1").mkdir(parents=True)
    (root / "my_module1" / "__init__.py").write_text("")
    (root / "my_module1" / "my_inference_file.py").write_text(
        "def load_model():\n    return {'offset': 100}\n\n"
        "def f(model, app_config=None):\n    return lambda x: x + model['offset'] + app_config['extra']\n"
    )
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n")
    bundles = {
        "cls": client.create_model_bundle("cls", ENV, predict_fn_or_cls=Counter, requirements=[]),
        "with-model": client.create_model_bundle(
            "with-model",
            ENV,
            load_predict_fn=load_predict_fn,
            model={"base": 10},
            requirements=[],
            app_config={"scale": 3},
        ),
        "with-loader": client.create_model_bundle(
            "with-loader", ENV, load_predict_fn=load_predict_fn, load_model_fn=lambda: {"base": 1}, requirements=[]
        ),
        "zip": client.create_model_bundle_from_dirs(
            "zip",
            [str(root / "my_module1")],
            str(requirements),
            ENV,
            "my_module1.my_inference_file.f",
            "my_module1.my_inference_file.load_model",
            app_config={"extra": 5},
        ),
    }
    endpoints = {
        name: client.create_model_endpoint(f"ep-{name}", bundle, **SMALL, min_workers=1, max_workers=1)
        for name, bundle in bundles.items()
    }
    for ep in endpoints.values():
        wait_status(ep, "READY")
    assert endpoints["cls"].predict(args(x=1)).result == '{"x": 1, "calls": 1}'
    assert endpoints["cls"].predict(args(x=2)).result == '{"x": 2, "calls": 2}'  # one instance per replica
    assert endpoints["with-model"].predict(args(x=2)).result == "16"  # 10 + 2 * 3 (app_config)
    assert endpoints["with-loader"].predict(args(x=2)).result == "3"
    assert endpoints["zip"].predict(args(x=1)).result == "106"
    for ep in endpoints.values():
        client.delete_model_endpoint(ep)


@pytest.fixture(scope="module")
def echo_endpoint(serving_server: ServerHandle, echo_bundle) -> launch.SyncEndpoint:  # type: ignore[no-untyped-def]
    ep = client_for(serving_server).create_model_endpoint(
        "echo-ep", echo_bundle, **SMALL, min_workers=1, max_workers=1, labels={"team": "ml"}
    )
    wait_status(ep, "READY")
    return ep


def test_args_keep_json_types_and_pickled_results_load(echo_endpoint) -> None:  # type: ignore[no-untyped-def]
    response = echo_endpoint.predict(args(x=1, y=[1.5, "a"], z=None))
    assert response.status == "SUCCESS"
    assert response.result == '{"x": 1, "y": [1.5, "a"], "z": null}'
    pickled = echo_endpoint.predict(launch.EndpointRequest(args={"x": 1}, return_pickled=True))
    assert pickled.result_url and pickled.result is None
    assert pickled.load_result() == {"x": 1}
    assert echo_endpoint.model_endpoint.labels == {"team": "ml"}


@pytest.fixture(scope="module")
def file_server() -> Iterator[str]:
    """A real HTTP server on loopback serving the bytes a url request reads."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = b"hello bytes"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/input.bin"
    server.shutdown()


def test_url_requests_pass_bytes(serving_server: ServerHandle, file_server: str) -> None:
    client = client_for(serving_server)

    def length_and_text(data: bytes) -> dict:
        return {"n": len(data), "text": data.decode()}

    bundle = client.create_model_bundle("bytes", ENV, predict_fn_or_cls=length_and_text, requirements=[])
    ep = client.create_model_endpoint("bytes-ep", bundle, **SMALL)
    wait_status(ep, "READY")
    response = ep.predict(launch.EndpointRequest(url=file_server, return_pickled=False))
    assert response.result == '{"n": 11, "text": "hello bytes"}'
    refused = ep.predict(launch.EndpointRequest(url="file:///etc/hostname", return_pickled=False))
    assert refused.status == "FAILURE" and "file" in refused.traceback
    client.delete_model_endpoint(ep)


def test_predict_that_raises_is_failure_with_traceback(serving_server: ServerHandle) -> None:
    client = client_for(serving_server)

    def broken(x: int) -> int:
        raise ValueError(f"cannot handle {x}")

    ep = client.create_model_endpoint(
        "broken-ep", client.create_model_bundle("broken", ENV, predict_fn_or_cls=broken, requirements=[]), **SMALL
    )
    wait_status(ep, "READY")
    response = ep.predict(args(x=7))
    assert response.status == "FAILURE"
    assert "ValueError: cannot handle 7" in response.traceback and "Traceback" in response.traceback
    assert ep.predict(args(x=8)).status == "FAILURE"  # the replica is still there
    client.delete_model_endpoint(ep)


# ---- bad input and unfit requests ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cpus": 0.5}, "endpoint.resources.cpus"),
        ({"memory": "8GB"}, "endpoint.resources.memory"),
        ({"memory": "8 Gi"}, "endpoint.resources.memory"),
        ({"min_workers": 3, "max_workers": 2}, "endpoint.workers.max_workers"),
        ({"per_worker": 0}, "endpoint.workers.per_worker"),
        ({"gpus": 1, "gpu_type": "nvidia-geforce-9000"}, "endpoint.resources.gpu_type"),
    ],
)
def test_bad_settings_name_the_field(serving_server: ServerHandle, echo_bundle, kwargs, field) -> None:  # type: ignore[no-untyped-def]
    settings = {**SMALL, **kwargs}
    with pytest.raises(launch.InvalidArgumentError) as err:
        client_for(serving_server).create_model_endpoint("bad-ep", echo_bundle, **settings)
    assert err.value.field == field
    assert client_for(serving_server).get_model_endpoint("bad-ep") is None


def test_unknown_bundle_type_and_duplicates(serving_server: ServerHandle, echo_endpoint, echo_bundle) -> None:  # type: ignore[no-untyped-def]
    client = client_for(serving_server)
    with pytest.raises(launch.NotFoundError):
        client.create_model_endpoint("orphan", "no-such-bundle", **SMALL)
    with pytest.raises(ValueError, match="sync"):
        client.create_model_endpoint("wrong-type", echo_bundle, endpoint_type="batch", **SMALL)
    stub = egrpc.ModelEndpointServiceStub(serving_server.channel())
    with pytest.raises(grpc.RpcError) as err:
        stub.CreateModelEndpoint(
            epb.CreateModelEndpointRequest(endpoint=epb.ModelEndpoint(name="raw", bundle_name="echo")),
            metadata=(("authorization", f"Bearer {serving_server.key_for('alice')}"),),
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "endpoint_type" in err.value.details()
    with pytest.raises(launch.AlreadyExistsError):
        client.create_model_endpoint("echo-ep", echo_bundle, **SMALL)


def test_update_if_exists_edits_instead(serving_server: ServerHandle, echo_endpoint, echo_bundle) -> None:  # type: ignore[no-untyped-def]
    client = client_for(serving_server)
    before = echo_endpoint.refresh().generation
    ep = client.create_model_endpoint(
        "echo-ep", echo_bundle, **SMALL, min_workers=1, max_workers=2, update_if_exists=True
    )
    assert ep.model_endpoint.generation == before + 1
    assert ep.worker_settings()["max_workers"] == 2
    wait_status(ep, "READY")


def test_async_endpoint_refuses_sync_predict(serving_server: ServerHandle, echo_bundle) -> None:  # type: ignore[no-untyped-def]
    client = client_for(serving_server)
    ep = client.create_model_endpoint("async-ep", echo_bundle, endpoint_type="async", **SMALL)
    stub = igrpc.InferenceServiceStub(serving_server.channel())
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(
            ipb.PredictRequest(endpoint_name="async-ep", input=ipb.RequestInput(args_json="{}")),
            metadata=(("authorization", f"Bearer {serving_server.key_for('alice')}"),),
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "async" in err.value.details()
    assert isinstance(ep, launch.AsyncEndpoint)
    client.delete_model_endpoint(ep)


def test_deadline_exceeded_and_both_or_neither_input(serving_server: ServerHandle) -> None:
    client = client_for(serving_server)

    def slow(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    ep = client.create_model_endpoint(
        "slow-ep", client.create_model_bundle("slow", ENV, predict_fn_or_cls=slow, requirements=[]), **SMALL
    )
    wait_status(ep, "READY")
    started = time.monotonic()
    with pytest.raises(launch.DeadlineExceededError):
        ep.predict(args(seconds=5), timeout=0.5)
    assert time.monotonic() - started < 3
    assert ep.predict(args(seconds=0.01)).result == "0.01"
    with pytest.raises(ValueError, match="exactly one"):
        launch.EndpointRequest(url="http://x", args={"a": 1})
    stub = igrpc.InferenceServiceStub(serving_server.channel())
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(
            ipb.PredictRequest(endpoint_name="slow-ep", input=ipb.RequestInput()),
            metadata=(("authorization", f"Bearer {serving_server.key_for('alice')}"),),
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    client.delete_model_endpoint(ep)


def test_owners_cannot_see_or_call_each_others_endpoints(serving_server: ServerHandle, echo_endpoint) -> None:  # type: ignore[no-untyped-def]
    bob = client_for(serving_server, "bob")
    assert bob.get_model_endpoint("echo-ep") is None
    assert "echo-ep" not in {e.name for e in bob.list_model_endpoints()}
    with pytest.raises(launch.NotFoundError):
        bob.sync_request("echo-ep", args={"x": 1})
    with pytest.raises(launch.NotFoundError):
        bob.delete_model_endpoint("echo-ep")
    result_url = echo_endpoint.predict(launch.EndpointRequest(args={"x": 1}, return_pickled=True)).result_url
    with pytest.raises(launch.NotFoundError):
        bob.download_result(result_url)


def test_creation_logs_have_events_and_replica_log(serving_server: ServerHandle, echo_endpoint) -> None:  # type: ignore[no-untyped-def]
    logs = client_for(serving_server).read_endpoint_creation_logs(echo_endpoint)
    assert "UPDATE_PENDING: created with bundle 'echo'" in logs
    assert "READY" in logs
    if serving_server.backend == "sqlite-local":  # type: ignore[attr-defined]
        assert "Launch replica ready: bundle 'echo'" in logs


def test_delete_endpoint_frees_its_bundle(serving_server: ServerHandle) -> None:
    client = client_for(serving_server)
    bundle = client.create_model_bundle("short-lived", ENV, predict_fn_or_cls=make_echo(), requirements=[])
    ep = client.create_model_endpoint("short-lived-ep", bundle, **SMALL)
    with pytest.raises(launch.FailedPreconditionError):
        client.delete_model_bundle(bundle)
    assert client.delete_model_endpoint(ep) is True
    wait_for(lambda: client.get_model_endpoint("short-lived-ep") is None, 60, "the endpoint row to go")
    assert client.delete_model_bundle(bundle) is True


def test_health_follows_the_serving_layer(serving_server: ServerHandle, echo_endpoint) -> None:  # type: ignore[no-untyped-def]
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stub = health_pb2_grpc.HealthStub(serving_server.channel())
    for service in ("", "launch.v1.ModelBundleService", "launch.v1.InferenceService", "launch.v1.TaskService"):
        response = stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING, service
