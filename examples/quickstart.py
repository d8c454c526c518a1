"""Quick start: registers bundles through the SDK, serves one as a sync endpoint on Ray Serve and
sends it requests. Reads LAUNCH_API_KEY and LAUNCH_ENDPOINT (scripts/quickstart.sh sets both)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import launch

ENV_PARAMS = {"framework_type": "pytorch", "pytorch_image_tag": "2.1.0-cuda12.1-cudnn8-runtime"}


def echo(**kwargs):  # type: ignore[no-untyped-def]
    return kwargs


def main() -> None:
    client = launch.LaunchClient()
    print(client)
    for endpoint in client.list_model_endpoints():
        if endpoint.name == "echo-ep":
            client.delete_model_endpoint(endpoint)
            while client.get_model_endpoint("echo-ep") is not None:
                time.sleep(0.2)
    for old in client.list_model_bundles():
        if old.name in ("echo", "zipped"):
            client.delete_model_bundle(old)

    bundle = client.create_model_bundle("echo", env_params=ENV_PARAMS, predict_fn_or_cls=echo, requirements=[])
    print(f"registered {bundle.name}: {bundle.size_bytes} bytes, sha256 {bundle.sha256[:12]}…, {bundle.location}")

    with tempfile.TemporaryDirectory() as tmp:
        package = Path(tmp) / "my_module1"
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "my_inference_file.py").write_text(
            "def load_model():\n    return {'scale': 2}\n\n"
            "def f(model):\n    return lambda x: x * model['scale']\n"
        )
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text("# none needed beyond the server's environment\n")
        zipped = client.create_model_bundle_from_dirs(
            "zipped",
            base_paths=[str(package)],
            requirements_path=str(requirements),
            env_params=ENV_PARAMS,
            load_predict_fn_module_path="my_module1.my_inference_file.f",
            load_model_fn_module_path="my_module1.my_inference_file.load_model",
        )
    print(f"registered {zipped.name} ({zipped.packaging_type}) at {zipped.location}")
    print("bundles:", [b.name for b in client.list_model_bundles()])

    started = time.monotonic()
    endpoint = client.create_model_endpoint(
        "echo-ep", bundle, cpus=1, memory="1Gi", min_workers=0, max_workers=2, per_worker=2, labels={"team": "ml"}
    )
    while (status := endpoint.status()) not in ("READY", "UPDATE_FAILED"):
        time.sleep(0.2)
    print(f"endpoint {endpoint.name}: {status} after {time.monotonic() - started:.1f} s", endpoint.worker_settings())
    response = endpoint.predict(launch.EndpointRequest(args={"x": 1, "y": "hello"}, return_pickled=False))
    print("predict ->", response.status, response.result)
    pickled = endpoint.predict(launch.EndpointRequest(args={"x": [1, 2, 3]}, return_pickled=True))
    print("predict (pickled) ->", pickled.status, pickled.result_url, "->", pickled.load_result())
    print(client.read_endpoint_creation_logs(endpoint).splitlines()[:6])

    options = {"memory": "512Mi", "pyspark_partition_size": 5}
    job_id = client.batch_async_request(bundle, inputs=[{"i": i} for i in range(20)], batch_task_options=options)
    while (job := client.get_batch_async_response(job_id))["status"] not in ("SUCCESS", "FAILURE", "CANCELLED"):
        time.sleep(0.2)
    results = client.load_batch_results(job_id)
    print(f"batch job {job_id}: {job['status']} in {job['duration']}, first results:", results[:3])


if __name__ == "__main__":
    main()
