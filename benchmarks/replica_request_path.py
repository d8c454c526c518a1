"""The replica's direct-route request path alone, without Ray: what one replica process can take.

Why: on this machine a batch function that does no work reaches only about twice the rate of an
unbatched 1-row MLP (benchmarks/batching.py), so the request path, not the model, bounds small-model
serving. This measures that path in isolation and one piece of it: the `launch-accepted` header,
which the listener sends as a gRPC operation of its own before running each Predict (so the SDK
knows the replica took the request and must not retry it through the server). Rows:
  - as built: ReplicaListener's servicer on a grpc.aio server on the replica loop, a batch
    function that answers at once (so every request goes through the batcher, as in the batching
    benchmark's "does no work" row);
  - without the header op: the same with the listener's admission check patched to skip the
    `send_initial_metadata` call, the header then riding with the answer. This is not how Launch
    runs (a call lost after the replica started it could then be run twice); it prices the
    header's own operation.
Each replica is a process of its own, loaded by 4 client processes x 16 threads of sync gRPC
Predict calls (a 5.4 kB args_json, as in the batching benchmark), for a fixed window; rows
alternate, the order flipping each round.

Run from the repository root:
    .venv/bin/python -m benchmarks.replica_request_path [--rounds 3] [--window 6]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

SECRET = b"bench-secret"
CLIENT_PROCS = 4
THREADS = 16
ARGS_JSON = json.dumps({"row": "x" * 5400})
MODES = {"as built": "header", "without the header op": "no-header"}


def serve_replica(mode: str, port_file: str) -> None:
    """The replica side: runtime, batcher, listener and gRPC server on the replica loop."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import grpc
    import launch
    from launch.packaging import FORM_PREDICT_FN_OR_CLS, pickle_bundle
    from launch.v1 import inference_pb2_grpc as igrpc

    from launch_server.replica.bundle_runtime import (
        BundleDescriptor,
        BundleRuntime,
        RuntimeConfig,
        current_python_version,
    )
    from launch_server.replica.calls import ReplicaCalls
    from launch_server.replica.listener import DirectConfig, ReplicaListener, _Servicer
    from launch_server.replica.replica_loop import ReplicaLoop
    from launch_server.storage.local import LocalStorage
    from launch_server.wire.route_tokens import endpoint_key

    @launch.batched(max_batch_size=64)
    def predict(inputs: list[Any]) -> list[Any]:
        return [{"ok": 1} for _ in inputs]

    work = Path(tempfile.mkdtemp(prefix="request-path-"))
    storage = LocalStorage(work / "storage")
    data, metadata = pickle_bundle(FORM_PREDICT_FN_OR_CLS, predict, None, None, None, None)
    descriptor = BundleDescriptor(
        "b1",
        "bench",
        "CLOUDPICKLE",
        FORM_PREDICT_FN_OR_CLS,
        storage.put_bytes("bundles/b1.pkl", data),
        metadata,
        python_version=current_python_version(),
    )
    loop = ReplicaLoop().start()
    runtime = BundleRuntime(descriptor, RuntimeConfig(storage_url=storage.root_url, work_dir=str(work)), loop=loop)
    executor = ThreadPoolExecutor(1)
    calls = ReplicaCalls(runtime, executor, loop)
    config = DirectConfig("e1", "ep", endpoint_key(SECRET, "e1").hex())
    listener = ReplicaListener(config, "app", "r1", runtime.predict, executor, calls=calls, loop=loop)
    if mode == "no-header":

        async def admit_without_header(request: Any, context: Any, accepted: Any) -> Any:
            _, why = listener.token_of(context)
            if why is not None:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, why)
            return listener._checked(request, accepted)  # noqa: SLF001 - the variant priced here

        listener._admit = admit_without_header  # type: ignore[method-assign]  # noqa: SLF001

    async def start() -> int:
        server = grpc.aio.server()
        igrpc.add_InferenceServiceServicer_to_server(_Servicer(listener), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        globals()["_server"] = server  # kept alive
        return port

    port = loop.submit(start()).result(10)
    Path(port_file).write_text(str(port))
    asyncio.run(asyncio.sleep(3600))


def load(port: str, start_at: float, window_s: float) -> None:
    """One client process: THREADS threads of sync Predict calls; prints how many ended in the window."""
    import grpc
    from launch.v1 import inference_pb2 as ipb
    from launch.v1 import inference_pb2_grpc as igrpc

    from launch_server.wire.route_tokens import mint

    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = igrpc.InferenceServiceStub(channel)
    metadata = (("authorization", f"Bearer {mint(SECRET, 'e1', 3600)[0]}"),)
    request = ipb.PredictRequest(endpoint_name="ep", input=ipb.RequestInput(args_json=ARGS_JSON))
    stub.Predict(request, metadata=metadata, timeout=10)
    counts = [0] * THREADS

    def worker(i: int) -> None:
        time.sleep(max(0.0, start_at - time.time()))
        while time.time() < start_at + window_s:
            response = stub.Predict(request, metadata=metadata, timeout=10)
            if response.result.state == ipb.RESULT_STATE_SUCCESS:
                counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(sum(counts))


def measure(mode: str, window_s: float) -> float:
    """Requests per second one replica process of `mode` answered in the window."""
    port_file = Path(tempfile.mkdtemp(prefix="request-path-port-")) / "port"
    me = [sys.executable, "-m", "benchmarks.replica_request_path"]
    replica = subprocess.Popen([*me, "_replica", mode, str(port_file)])
    try:
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text()):
            if time.monotonic() > deadline or replica.poll() is not None:
                raise RuntimeError("the replica did not start")
            time.sleep(0.1)
        port = port_file.read_text()
        start_at = time.time() + 3
        clients = [
            subprocess.Popen([*me, "_load", port, str(start_at), str(window_s)], stdout=subprocess.PIPE, text=True)
            for _ in range(CLIENT_PROCS)
        ]
        done = sum(int(c.communicate(timeout=window_s + 60)[0].strip()) for c in clients)
        return done / window_s
    finally:
        replica.kill()
        replica.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=float, default=6.0)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {label: [] for label in MODES}
    labels = list(MODES)
    for r in range(args.rounds):
        for label in labels if r % 2 == 0 else labels[::-1]:
            rates[label].append(measure(MODES[label], args.window))
            print(f"round {r + 1}: {label}: {rates[label][-1]:,.0f} req/s", flush=True)
    base = statistics.median(rates["as built"])
    print()
    print(
        f"Replica request path, {CLIENT_PROCS} client processes x {THREADS} threads, {args.window:g} s windows, "
        f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M %Z')}:"
    )
    print()
    print("| replica | req/s (median) | × as built | rounds |")
    print("|---|---:|---:|---|")
    for label, values in rates.items():
        median = statistics.median(values)
        runs = ", ".join(f"{v:,.0f}" for v in values)
        print(f"| {label} | {median:,.0f} | {median / base:.2f} | {runs} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_replica":
        serve_replica(sys.argv[2], sys.argv[3])
    elif len(sys.argv) > 1 and sys.argv[1] == "_load":
        load(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
    else:
        main()
