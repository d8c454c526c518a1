"""How endpoints behave on Ray Serve over time: scale from zero and back, scale up under load,
rollout of a new bundle, resources no node has, a fake T4 node, per-endpoint requirements, a
crashing replica, a bundle pickled for another Python, and a server restart. One SQLite server
joined to the session's two-node cluster (the backend matrix is covered in test_endpoints)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
import time
from pathlib import Path

import cloudpickle
import launch
import pytest
from launch.v1 import model_bundle_pb2 as bpb
from launch.v1 import model_bundle_pb2_grpc as bgrpc

from tests.integration.test_endpoints import ENV, SMALL, args, client_for, make_echo, wait_for, wait_status
from tests.server_fixtures import serving_env, serving_server_fixture
from tests.support import ServerHandle, start_server

server = serving_server_fixture("behaviour", "b{dir}")


def workers(ep: launch.Endpoint) -> int:
    return ep.worker_settings()["available_workers"]


def test_scale_from_zero_and_back_to_zero(server: ServerHandle) -> None:
    client = client_for(server)
    bundle = client.create_model_bundle("zero", ENV, predict_fn_or_cls=make_echo(), requirements=[])
    ep = client.create_model_endpoint("zero-ep", bundle, **SMALL, min_workers=0, max_workers=1, per_worker=1)
    wait_status(ep, "READY")
    wait_for(lambda: workers(ep) == 0, 30, "zero workers")
    started = time.monotonic()
    assert ep.predict(args(x=1), timeout=60).result == '{"x": 1}'
    first_response = time.monotonic() - started
    assert first_response < 30
    wait_for(lambda: workers(ep) == 1, 10, "one worker after the request")
    wait_for(lambda: workers(ep) == 0, 60, "scale back to zero when idle")
    assert ep.predict(args(x=2), timeout=60).result == '{"x": 2}'  # and up again
    client.delete_model_endpoint(ep)


def test_scale_up_under_load_and_back(server: ServerHandle) -> None:
    client = client_for(server)

    def slow_echo(x: int) -> int:
        import time as _t

        _t.sleep(0.2)
        return x

    bundle = client.create_model_bundle("slow-echo", ENV, predict_fn_or_cls=slow_echo, requirements=[])
    ep = client.create_model_endpoint("load-ep", bundle, **SMALL, min_workers=1, max_workers=3, per_worker=1)
    wait_status(ep, "READY")
    stop = threading.Event()
    errors: list[BaseException] = []

    def load() -> None:
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                ep.predict(args(x=1), timeout=30)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=load) for _ in range(9)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: workers(ep) == 3, 45, "three workers under load", interval=0.25)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:3]
    wait_for(lambda: workers(ep) == 1, 60, "back to one worker")
    client.delete_model_endpoint(ep)


def test_edit_rolls_out_a_new_bundle(server: ServerHandle) -> None:
    client = client_for(server)
    v1 = client.create_model_bundle("v1", ENV, predict_fn_or_cls=lambda: "v1", requirements=[])
    v2 = client.create_model_bundle("v2", ENV, predict_fn_or_cls=lambda: "v2", requirements=[])
    ep = client.create_model_endpoint("rollout-ep", v1, **SMALL)
    wait_status(ep, "READY")
    assert ep.predict(args()).result == '"v1"'
    edited = client.edit_model_endpoint(ep, model_bundle=v2)
    assert edited.model_endpoint.generation == 2 and edited.model_endpoint.bundle_name == "v2"
    wait_for(lambda: ep.predict(args()).result == '"v2"', 60, "the new bundle to answer")
    wait_status(ep, "READY")
    logs = client.read_endpoint_creation_logs(ep)
    assert "edited: bundle_name='v2'" in logs and "deploying generation 2" in logs
    client.delete_model_endpoint(ep)


def test_resources_no_node_has_fail_fast(server: ServerHandle) -> None:
    client = client_for(server)
    bundle = client.create_model_bundle("a100", ENV, predict_fn_or_cls=make_echo(), requirements=[])
    ep = client.create_model_endpoint("a100-ep", bundle, **SMALL, gpus=1, gpu_type="nvidia-ampere-a100")
    wait_status(ep, "UPDATE_FAILED", timeout=20)
    assert "accelerator_type:A100" in ep.model_endpoint.status_reason
    started = time.monotonic()
    with pytest.raises(launch.UnavailableError, match="A100"):
        ep.predict(args(x=1))
    assert time.monotonic() - started < 2
    client.delete_model_endpoint(ep)


def test_gpu_endpoint_lands_on_the_t4_node_and_a_second_waits(server: ServerHandle) -> None:
    client = client_for(server)

    def where() -> dict:
        import os as _os

        import ray as _ray

        return {
            "cuda": _os.environ.get("CUDA_VISIBLE_DEVICES"),
            "accelerators": sorted(k for k in _ray.get_runtime_context().get_assigned_resources() if "accel" in k),
            "gpu_ids": [str(g) for g in _ray.get_gpu_ids()],
        }

    bundle = client.create_model_bundle("where", ENV, predict_fn_or_cls=where, requirements=[])
    first = client.create_model_endpoint("t4-ep", bundle, **SMALL, gpus=1, gpu_type="nvidia-tesla-t4")
    wait_status(first, "READY")
    placed = first.predict(args()).load_result()
    assert placed["cuda"] == "0" and placed["gpu_ids"] == ["0"]
    second = client.create_model_endpoint("t4-ep-2", bundle, **SMALL, gpus=1, gpu_type="nvidia-tesla-t4")
    wait_for(
        lambda: second.status() == "UPDATE_IN_PROGRESS" and "GPU" in second.model_endpoint.status_reason,
        30,
        "the second T4 endpoint to report the missing GPU",
    )
    with pytest.raises(launch.UnavailableError, match="GPU"):
        second.predict(args())
    client.delete_model_endpoint(second)
    client.delete_model_endpoint(first)
    wait_for(lambda: client.get_model_endpoint("t4-ep") is None, 60, "the T4 endpoint to go")


def test_requirements_are_installed_per_endpoint(server: ServerHandle) -> None:
    with pytest.raises(ImportError):
        __import__("humanize")  # not in the server's environment

    def pretty(n: int) -> str:
        import humanize

        return humanize.intcomma(n)

    client = client_for(server)
    bundle = client.create_model_bundle("pretty", ENV, predict_fn_or_cls=pretty, requirements=["humanize==4.17.0"])
    ep = client.create_model_endpoint("pretty-ep", bundle, **SMALL)
    wait_status(ep, "READY", timeout=300)
    assert ep.predict(args(n=1234567)).result == '"1,234,567"'
    assert "installing requirements ['humanize==4.17.0']" in client.read_endpoint_creation_logs(ep)
    client.delete_model_endpoint(ep)


def test_crashed_replica_fails_its_request_and_is_replaced(server: ServerHandle) -> None:
    client = client_for(server)

    def fragile(x: str) -> str:
        if x == "die":
            import os as _os

            _os._exit(1)
        return x

    bundle = client.create_model_bundle("fragile", ENV, predict_fn_or_cls=fragile, requirements=[])
    ep = client.create_model_endpoint("fragile-ep", bundle, **SMALL)
    wait_status(ep, "READY")
    with pytest.raises(launch.UnavailableError, match="died"):
        ep.predict(args(x="die"), timeout=30)
    wait_for(lambda: _answers(ep), 90, "a replacement replica to answer")
    logs = client.read_endpoint_creation_logs(ep)
    assert "recovering" in logs or "replacing" in logs, logs
    client.delete_model_endpoint(ep)


def _answers(ep: launch.Endpoint) -> bool:
    try:
        return ep.predict(args(x="ok"), timeout=10).result == '"ok"'
    except launch.LaunchError:
        return False


def test_bundle_pickled_for_another_python_is_refused(server: ServerHandle) -> None:
    data = cloudpickle.dumps(make_echo())
    spec = bpb.ModelBundleSpec(
        name="py39",
        packaging_type=bpb.PACKAGING_TYPE_CLOUDPICKLE,
        form=bpb.BUNDLE_FORM_PREDICT_FN_OR_CLS,
        python_version="3.9",
        env_params=ENV,
    )
    header = bpb.UploadModelBundleHeader(bundle=spec, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    bgrpc.ModelBundleServiceStub(server.channel()).UploadModelBundle(
        iter([bpb.UploadModelBundleRequest(header=header), bpb.UploadModelBundleRequest(chunk=data)]),
        metadata=(("authorization", f"Bearer {server.key_for('alice')}"),),
    )
    client = client_for(server)
    ep = client.create_model_endpoint("py39-ep", "py39", **SMALL)
    wait_status(ep, "UPDATE_FAILED", timeout=90)
    reason = ep.model_endpoint.status_reason
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert "3.9" in reason and running in reason, reason
    client.delete_model_endpoint(ep)


def test_server_restart_brings_endpoints_back(server: ServerHandle, tmp_path: Path) -> None:
    client = client_for(server)
    bundle = client.create_model_bundle("durable", ENV, predict_fn_or_cls=make_echo(), requirements=[])
    ep = client.create_model_endpoint("durable-ep", bundle, **SMALL)
    wait_status(ep, "READY")
    app = f"{server.prefix}-{ep.model_endpoint.endpoint_id}"  # type: ignore[attr-defined]
    server.stop()
    # The serving state is lost while the server is down (as after a Ray cluster restart).
    script = (
        "import ray, sys; from ray import serve; ray.init(address=sys.argv[1], log_to_driver=False); "
        "serve.delete(sys.argv[2]); print(sorted(serve.status().applications))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, server.ray_address, app],  # type: ignore[attr-defined]
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert app not in out
    restarted = start_server(server.data_dir, extra_env=serving_env(server.ray_address, server.prefix))  # type: ignore[attr-defined]
    server.proc, server.port = restarted.proc, restarted.port
    client = client_for(server)
    ep = client.get_model_endpoint("durable-ep")
    assert ep is not None
    wait_status(ep, "READY", timeout=90)
    assert ep.predict(args(x=3)).result == '{"x": 3}'
    assert client.read_endpoint_creation_logs(ep).count("deploying generation 1") >= 2  # redeployed
