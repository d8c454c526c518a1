"""GPU check: a Launch endpoint with gpus=1 runs a small torch model on the GPU.

Why: issue #3 asks, where a session is lent a GPU machine, for proof that the whole path works on
a real accelerator: the gpu_type -> Ray accelerator_type mapping places the replica on the GPU
node, the replica's torch sees the device Ray assigned (CUDA_VISIBLE_DEVICES), and predict latency
through Launch next to the model's own in-process time. It also checks that a gpu_type the cluster
lacks is reported by name instead of hanging.

What it does, in one run (sized to fit a short lease of a GPU machine):
  1. Times the model in this process (no Ray, no Launch): the floor.
  2. Starts `launch-server serve` on embedded defaults (SQLite, local storage, a local Ray that
     detects the GPU) on a free 127.0.0.1 port.
  3. Registers a load_model_fn + load_predict_fn bundle (an fp16 MLP moved to CUDA in the replica)
     and creates a sync endpoint gpus=1 with the gpu_type matching the card (H100 or H200).
  4. Asks the replica what it sees (device name, CUDA_VISIBLE_DEVICES, Ray's accelerator ids and
     the cluster's accelerator_type resources), then predict p50/p99 at concurrency 1 over the
     direct route and through the server, and requests/s at concurrency 16 over the direct route.
  5. Creates a second gpus=1 endpoint with gpu_type nvidia-tesla-t4 and reports its status reason
     and how a predict on it fails.
Prints a table and one JSON line; with $OUT set, writes $OUT/gpu_check.json and the server log.

Without CUDA it runs on the CPU with gpus=0 (`--cpu`), so the script itself is tested here.

    PYTHONPATH=. python3 -m benchmarks.gpu_check [--n 300] [--cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import launch

from benchmarks.sync_predict import REPO, Procs, tail, wait_ready
from tests.server_process import MODULE_COMMAND, start_launch_server

ENV_PARAMS = {"framework_type": "pytorch", "pytorch_image_tag": "gpu-check"}
WIDTH, LAYERS, ROWS = 1024, 4, 8
GPU_TYPES = {"H200": "nvidia-hopper-h200", "H100": "nvidia-hopper-h100", "A100": "nvidia-ampere-a100"}


def load_model() -> Any:
    """Runs in the replica (and in this process for the floor): an fp16 MLP on CUDA when there is
    one, fp32 on the CPU otherwise."""
    import torch

    torch.manual_seed(0)
    layers: list[Any] = []
    for i in range(LAYERS):
        layers.append(torch.nn.Linear(WIDTH, WIDTH))
        if i < LAYERS - 1:
            layers.append(torch.nn.ReLU())
    cuda = torch.cuda.is_available()
    model = torch.nn.Sequential(*layers).to("cuda" if cuda else "cpu", torch.float16 if cuda else torch.float32)
    return model.eval()


def load_predict(model: Any) -> Any:
    """Returns predict(rows=8, info=False): the sum of the MLP's output for `rows` rows of ones,
    or, with info=True, what the replica sees of its device and of Ray."""
    import torch

    param = next(model.parameters())

    def predict(rows: int = ROWS, info: bool = False) -> Any:
        if info:
            import ray

            resources = ray.cluster_resources()
            return {
                "device": str(param.device),
                "device_name": torch.cuda.get_device_name() if param.is_cuda else "cpu",
                "dtype": str(param.dtype),
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "torch": torch.__version__,
                "ray_accelerator_ids": ray.get_runtime_context().get_accelerator_ids(),
                "cluster_gpus": resources.get("GPU", 0),
                "cluster_accelerator_types": sorted(k for k in resources if k.startswith("accelerator_type:")),
                "pid": os.getpid(),
            }
        with torch.inference_mode():
            x = torch.ones(rows, WIDTH, device=param.device, dtype=param.dtype)
            return float(model(x).float().sum().item())

    return predict


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] * 1000, 3)


def latency(call: Any, n: int) -> dict[str, float]:
    for _ in range(20):
        call()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return {"p50_ms": pct(samples, 50), "p99_ms": pct(samples, 99), "n": n}


def throughput(call: Any, threads: int, seconds: float) -> dict[str, float]:
    done = [0] * threads
    errors: list[str] = []
    stop_at = time.perf_counter() + seconds

    def worker(i: int) -> None:
        while time.perf_counter() < stop_at:
            try:
                call()
                done[i] += 1
            except Exception as exc:  # noqa: BLE001 - counted, the run goes on
                errors.append(repr(exc)[:200])
                return

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    start = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return {"req_per_s": round(sum(done) / (time.perf_counter() - start), 1), "threads": threads, "errors": errors[:3]}


def in_process_floor(n: int) -> dict[str, Any]:
    import torch

    predict = load_predict(load_model())
    out = latency(lambda: predict(), n)
    out["device_name"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return out


def missing_gpu_type(client: launch.LaunchClient, bundle: launch.ModelBundle, wait_s: float) -> dict[str, Any]:
    """A gpus=1 endpoint of a gpu_type this cluster lacks: its status reason, and a predict's error."""
    endpoint = client.create_model_endpoint(
        "gpu-check-t4",
        bundle,
        cpus=1,
        memory="2Gi",
        gpus=1,
        gpu_type="nvidia-tesla-t4",
        min_workers=1,
        max_workers=1,
        per_worker=1,
        endpoint_type="sync",
    )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and "T4" not in (endpoint.model_endpoint.status_reason or ""):
        endpoint.status()
        time.sleep(0.5)
    start = time.monotonic()
    try:
        endpoint.predict(launch.EndpointRequest(args={"rows": 1}, return_pickled=False), timeout=30)
        error = "predict unexpectedly answered"
    except Exception as exc:  # noqa: BLE001 - the error is what we report
        error = f"{type(exc).__name__}: {str(exc)[:240]}"
    return {
        "status": endpoint.model_endpoint.status,
        "status_reason": endpoint.model_endpoint.status_reason,
        "predict_error": error,
        "predict_failed_after_s": round(time.monotonic() - start, 3),
    }


def run(args: argparse.Namespace, root: Path, procs: Procs) -> dict[str, Any]:
    result: dict[str, Any] = {"python": sys.version.split()[0]}
    result["in_process"] = in_process_floor(args.n)
    card = result["in_process"]["device_name"]
    gpu_type = next((t for key, t in GPU_TYPES.items() if key in card), None)
    gpus = 0 if args.cpu or gpu_type is None else 1

    start = time.monotonic()
    server = procs.track(
        start_launch_server(
            root / "data",
            {"RAY_TMPDIR": str(root / "ray")},
            wait="health",
            timeout=240,
            poll_s=0.1,
            log_path=root / "server.log",
            cwd=REPO,
            command=MODULE_COMMAND,  # runs where the venv's entry point is not installed
        )
    )
    result["server_start_s"] = round(time.monotonic() - start, 2)
    address, api_key = server.address, server.dev_api_key()
    client = launch.LaunchClient(api_key=api_key, endpoint=address)
    bundle = client.create_model_bundle(
        "gpu-mlp", env_params=ENV_PARAMS, load_model_fn=load_model, load_predict_fn=load_predict, requirements=[]
    )
    start = time.monotonic()
    endpoint = client.create_model_endpoint(
        "gpu-check",
        bundle,
        cpus=1,
        memory="4Gi",
        gpus=gpus,
        gpu_type=gpu_type if gpus else None,
        min_workers=1,
        max_workers=1,
        per_worker=16,
        endpoint_type="sync",
    )
    assert isinstance(endpoint, launch.SyncEndpoint)
    wait_ready(endpoint, timeout=240)
    result["endpoint"] = {
        "gpus": gpus,
        "gpu_type": gpu_type if gpus else None,
        "create_to_ready_s": round(time.monotonic() - start, 2),
    }
    info = endpoint.predict(launch.EndpointRequest(args={"info": True}, return_pickled=False), timeout=60)
    result["replica"] = json.loads(info.result) if info.status == "SUCCESS" else {"error": info.traceback}
    request = launch.EndpointRequest(args={"rows": ROWS}, return_pickled=False)

    def check(response: launch.EndpointResponse) -> None:
        if response.status != "SUCCESS":
            raise RuntimeError(response.traceback)

    result["direct_route"] = latency(lambda: check(endpoint.predict(request, timeout=30)), args.n)
    result["direct_route"].update(throughput(lambda: check(endpoint.predict(request, timeout=30)), 16, args.seconds))
    via_server = launch.LaunchClient(api_key=api_key, endpoint=address, direct_route=False)
    server_endpoint = via_server.get_model_endpoint("gpu-check")
    result["through_server"] = latency(lambda: check(server_endpoint.predict(request, timeout=30)), args.n)
    if gpus:
        try:
            result["missing_gpu_type"] = missing_gpu_type(client, bundle, wait_s=30)
        except Exception as exc:  # noqa: BLE001 - the numbers above still count; the row says why
            result["missing_gpu_type"] = {
                "status": "check failed",
                "status_reason": repr(exc)[:300],
                "predict_error": "",
                "predict_failed_after_s": None,
            }
    return result


def table(result: dict[str, Any]) -> str:
    replica = result.get("replica", {})
    rows = [
        ("card (in this process)", result["in_process"]["device_name"]),
        ("endpoint", f"gpus={result['endpoint']['gpus']} gpu_type={result['endpoint']['gpu_type']}"),
        ("create -> READY", f"{result['endpoint']['create_to_ready_s']} s"),
        (
            "Ray cluster GPU / accelerator types",
            f"{replica.get('cluster_gpus')} / {', '.join(replica.get('cluster_accelerator_types', []))}",
        ),
        ("replica device", f"{replica.get('device')} {replica.get('device_name')} ({replica.get('dtype')})"),
        (
            "replica CUDA_VISIBLE_DEVICES / Ray GPU ids",
            f"{replica.get('cuda_visible_devices')} / {replica.get('ray_accelerator_ids', {}).get('GPU')}",
        ),
        ("model in-process p50 / p99", f"{result['in_process']['p50_ms']} / {result['in_process']['p99_ms']} ms"),
        (
            "predict, direct route p50 / p99",
            f"{result['direct_route']['p50_ms']} / {result['direct_route']['p99_ms']} ms",
        ),
        (
            "predict, through the server p50 / p99",
            f"{result['through_server']['p50_ms']} / {result['through_server']['p99_ms']} ms",
        ),
        ("direct route req/s, 16 threads", f"{result['direct_route']['req_per_s']}"),
    ]
    if "missing_gpu_type" in result:
        missing = result["missing_gpu_type"]
        rows.append(("gpu_type nvidia-tesla-t4: status", f"{missing['status']}: {missing['status_reason']}"))
        rows.append(
            (
                "gpu_type nvidia-tesla-t4: predict",
                f"{missing['predict_error']} after {missing['predict_failed_after_s']} s",
            )
        )
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="requests per latency sample")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the throughput run")
    parser.add_argument("--cpu", action="store_true", help="gpus=0 even where CUDA is present")
    args = parser.parse_args()
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    root = Path(tempfile.mkdtemp(prefix="gpucheck-"))
    procs = Procs()
    out = os.environ.get("OUT")
    try:
        result = run(args, root, procs)
        print(table(result))
        print(json.dumps(result))
        if out:
            Path(out, "gpu_check.json").write_text(json.dumps(result, indent=2))
    except Exception:
        print(f"--- launch-server log ---\n{tail(root / 'server.log', 60)}", file=sys.stderr)
        raise
    finally:
        procs.stop_all()
        if out and (root / "server.log").exists():
            shutil.copy(root / "server.log", Path(out, "server.log"))
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()  # run as __main__, so cloudpickle ships load_model/load_predict by value
