"""Streaming predictions, side by side: Launch's streaming endpoint against a sync predict on the
same kind of endpoint and against Ray Serve's own streaming, in one run.

Why: a streaming endpoint is only worth having if its first chunk comes about as fast as a sync
answer and each further chunk costs little. Two measures, each beside its reference:
  1. time to first chunk, p50/p99 at concurrency 1, of a trivial generator (`yield i` five
     times), against a sync predict's p50 of the same echo on a sync endpoint, alternating
     request by request (goal: ≤ 1.2×);
  2. per-chunk cost: a 1,000-chunk stream's duration ÷ 1,000, against Ray Serve's own streaming
     (`handle.options(stream=True)` on a generator deployment, consumed from an asyncio loop in
     this driver process) in the same run (goal: ≤ 0.5× Ray Serve's);
  3. 64 concurrent streams × 200 chunks: chunks/s, against Ray Serve's streaming handle with 64
     streams open at once from the same asyncio loop (goal: ≥ 2×);
  4. cancellation: from the client's close() to the generator's `finally` in the replica (which
     writes the time to a file), p50/p99.
Launch rows use the SDK's default path (the direct route: SDK → replica) and, for reference, the
path through the server (`LaunchClient(direct_route=False)`); Launch's concurrent streams are
read by 64 threads of this process, each iterating its own stream.

One Ray cluster (num_cpus=16, the environment launch-server sets for a Ray of its own) hosts the
Serve generator deployment and the Launch server's endpoints (min_workers=max_workers=1).

Run from the repository root:
    .venv/bin/python -m benchmarks.streaming [--quick] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import launch

from benchmarks.sync_predict import ENV_PARAMS, HandlePath, Procs, prepare_environment, server_on_ray, wait_ready

REPO = Path(__file__).resolve().parent.parent
SERVE_APP = "stream-gen"  # must not start with the Launch server's app prefix
LONG_STREAM = 1000
CONCURRENT_STREAMS = 64
CONCURRENT_CHUNKS = 200
SERVE_ROW = "Ray Serve handle, stream=True"

if __name__ != "__main__":
    cloudpickle.register_pickle_by_value(sys.modules[__name__])


def generate(n: int = 5) -> Iterator[int]:
    """The streaming bundle: yields 0..n-1."""
    yield from range(n)


def echo(**kwargs: Any) -> Any:
    """The sync bundle: returns its arguments."""
    return kwargs


def until_closed(marker: str) -> Iterator[int]:
    """The cancellation bundle: yields until the stream is closed, then notes when in `marker`."""
    import time

    try:
        i = 0
        while True:
            yield i
            i += 1
            time.sleep(0.001)  # a step of work: close() waits for at most one to end
    finally:
        with open(marker, "w") as out:
            out.write(repr(time.time()))


def start_ray() -> str:
    """The run's Ray cluster and Serve with a generator deployment; returns the GCS address."""
    import ray
    from ray import serve

    ray.init(num_cpus=16, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": 0}, logging_config={"enable_access_log": False})

    @serve.deployment(max_ongoing_requests=100, logging_config={"enable_access_log": False})
    class Gen:
        def __call__(self, n: int) -> Iterator[int]:
            yield from range(n)

    serve.run(Gen.bind(), name=SERVE_APP, route_prefix=None)
    return ray.get_runtime_context().gcs_address


class ServeStreams(HandlePath):
    """Ray Serve's own streaming, awaited from the run-long asyncio loop HandlePath keeps (a
    handle's router stays on the loop that first used it)."""

    def stream_seconds(self, n: int, times: int) -> list[float]:
        from ray import serve

        async def run() -> list[float]:
            handle = serve.get_app_handle(SERVE_APP).options(stream=True)
            durations = []
            for _ in range(times):
                start = time.perf_counter()
                count = 0
                async for _value in handle.remote(n):
                    count += 1
                durations.append(time.perf_counter() - start)
                if count != n:
                    raise AssertionError(f"Serve streamed {count} of {n} values")
            return durations

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=600)

    def concurrent_chunks_per_s(self, streams: int, n: int) -> float:
        from ray import serve

        async def run() -> float:
            handle = serve.get_app_handle(SERVE_APP).options(stream=True)

            async def one() -> int:
                return sum([1 async for _ in handle.remote(n)])

            start = time.perf_counter()
            counts = await asyncio.gather(*(one() for _ in range(streams)))
            if sum(counts) != streams * n:
                raise AssertionError(f"Serve streamed {sum(counts)} of {streams * n} values")
            return sum(counts) / (time.perf_counter() - start)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=600)


def concurrent_chunks_per_s(endpoint: launch.StreamingEndpoint, streams: int, n: int) -> float:
    """`streams` streams of `n` chunks at once, one reading thread each; chunks per second."""
    counts: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(streams + 1)

    def read() -> None:
        try:
            barrier.wait()
            request = launch.EndpointRequest(args={"n": n}, return_pickled=False)
            counts.append(sum(1 for _ in endpoint.predict(request, timeout=300)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read, daemon=True) for _ in range(streams)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join(300)
    seconds = time.perf_counter() - start
    if errors or sum(counts) != streams * n:
        raise AssertionError(f"streamed {sum(counts)} of {streams * n} values; errors: {errors[:3]!r}")
    return sum(counts) / seconds


def cancel_to_finally_s(endpoint: launch.StreamingEndpoint, marker_dir: Path) -> float:
    """Seconds from close() after the first chunk to the generator's finally in the replica."""
    marker = marker_dir / f"closed-{uuid.uuid4().hex}"
    stream = endpoint.predict(launch.EndpointRequest(args={"marker": str(marker)}, return_pickled=False), timeout=60)
    next(stream)
    closed = time.time()
    stream.close()
    deadline = time.monotonic() + 10
    while not marker.exists() or not marker.read_text():
        if time.monotonic() > deadline:
            raise AssertionError("the generator's finally did not run within 10 s of close()")
        time.sleep(0.001)
    return float(marker.read_text()) - closed


def first_chunk_s(endpoint: launch.StreamingEndpoint, n: int = 5) -> float:
    """Seconds from the call to the first chunk; the rest of the stream is read and checked."""
    start = time.perf_counter()
    stream = endpoint.predict(launch.EndpointRequest(args={"n": n}, return_pickled=False), timeout=60)
    first = None
    values = []
    for chunk in stream:
        if first is None:
            first = time.perf_counter() - start
        if chunk.status != "SUCCESS":
            raise AssertionError(f"chunk {chunk.status}: {chunk.traceback}")
        values.append(json.loads(chunk.result))
    if values != list(range(n)) or first is None:
        raise AssertionError(f"streamed {values!r}")
    return first


def stream_s(endpoint: launch.StreamingEndpoint, n: int) -> float:
    start = time.perf_counter()
    count = sum(1 for _ in endpoint.predict(launch.EndpointRequest(args={"n": n}, return_pickled=False), timeout=120))
    if count != n:
        raise AssertionError(f"streamed {count} of {n} values")
    return time.perf_counter() - start


def sync_s(endpoint: launch.SyncEndpoint) -> float:
    start = time.perf_counter()
    response = endpoint.predict(launch.EndpointRequest(args={"x": 1}, return_pickled=False), timeout=60)
    if response.status != "SUCCESS":
        raise AssertionError(response.traceback)
    return time.perf_counter() - start


def alternate(calls: dict[str, Callable[[], float]], n: int, warmup: int) -> dict[str, list[float]]:
    """Each call n times after `warmup`, alternating call by call so drift hits all alike. The
    order rotates every round, so each call follows each other one equally often: what one path
    leaves behind (a through-the-server call's after-work) does not always land on the same next."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for i in range(warmup + n):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            seconds = calls[name]()
            if i >= warmup:
                samples[name].append(seconds)
    return samples


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer samples")
    parser.add_argument("--repeats", type=int, default=5, help="1,000-chunk streams per path")
    args = parser.parse_args()
    latency_n, warmup = (50, 10) if args.quick else (300, 30)
    cancel_n = 10 if args.quick else 50
    repeats = 3 if args.quick else args.repeats

    root = Path(tempfile.mkdtemp(prefix="streaming-"))
    procs = Procs()
    serve_streams: ServeStreams | None = None
    load_before = os.getloadavg()[0]
    try:
        prepare_environment(root)
        gcs_address = start_ray()
        serve_streams = ServeStreams()
        server = server_on_ray(procs, root, gcs_address, "sbench")
        key = server.dev_api_key()
        client = launch.LaunchClient(api_key=key, endpoint=server.address)
        via_server = launch.LaunchClient(api_key=key, endpoint=server.address, direct_route=False)
        workers = {"min_workers": 1, "max_workers": 1, "per_worker": 8, "cpus": 1, "memory": "1Gi"}
        gen_bundle = client.create_model_bundle(
            "gen", env_params=ENV_PARAMS, predict_fn_or_cls=generate, requirements=[]
        )
        echo_bundle = client.create_model_bundle("echo", env_params=ENV_PARAMS, predict_fn_or_cls=echo, requirements=[])
        closing_bundle = client.create_model_bundle(
            "until-closed", env_params=ENV_PARAMS, predict_fn_or_cls=until_closed, requirements=[]
        )
        streaming = client.create_model_endpoint("gen-ep", gen_bundle, endpoint_type="streaming", **workers)
        sync = client.create_model_endpoint("echo-ep", echo_bundle, endpoint_type="sync", **workers)
        wide = client.create_model_endpoint(
            "gen-wide", gen_bundle, endpoint_type="streaming", **{**workers, "per_worker": CONCURRENT_STREAMS}
        )
        closing = client.create_model_endpoint("closing-ep", closing_bundle, endpoint_type="streaming", **workers)
        for endpoint in (streaming, sync, wide, closing):
            wait_ready(endpoint, timeout=240)
        streaming_via_server = via_server.get_model_endpoint("gen-ep")
        sync_via_server = via_server.get_model_endpoint("echo-ep")
        assert isinstance(streaming, launch.StreamingEndpoint) and isinstance(sync, launch.SyncEndpoint)

        first = alternate(
            {
                "stream, direct": lambda: first_chunk_s(streaming),
                "sync, direct": lambda: sync_s(sync),
                "stream, server": lambda: first_chunk_s(streaming_via_server),
                "sync, server": lambda: sync_s(sync_via_server),
            },
            latency_n,
            warmup,
        )
        long_streams = {
            "Launch, direct": [stream_s(streaming, LONG_STREAM) for _ in range(repeats)],
            "Launch, server": [stream_s(streaming_via_server, LONG_STREAM) for _ in range(repeats)],
            SERVE_ROW: serve_streams.stream_seconds(LONG_STREAM, repeats),
        }
        wide_via_server = via_server.get_model_endpoint("gen-wide")
        concurrent: dict[str, list[float]] = {"Launch, direct": [], "Launch, server": [], SERVE_ROW: []}
        for _ in range(repeats):  # alternating, so drift hits all alike
            concurrent["Launch, direct"].append(concurrent_chunks_per_s(wide, CONCURRENT_STREAMS, CONCURRENT_CHUNKS))
            concurrent["Launch, server"].append(
                concurrent_chunks_per_s(wide_via_server, CONCURRENT_STREAMS, CONCURRENT_CHUNKS)
            )
            concurrent[SERVE_ROW].append(serve_streams.concurrent_chunks_per_s(CONCURRENT_STREAMS, CONCURRENT_CHUNKS))
        closing_via_server = via_server.get_model_endpoint("closing-ep")
        cancels = alternate(
            {
                "direct": lambda: cancel_to_finally_s(closing, root),
                "server": lambda: cancel_to_finally_s(closing_via_server, root),
            },
            cancel_n,
            3,
        )
        client.connection.close()
        via_server.connection.close()
    finally:
        procs.stop_all()
        if serve_streams is not None:
            serve_streams.stop_ray()
        shutil.rmtree(root, ignore_errors=True)

    print()
    print(
        f"Streaming, trivial generator; {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}; {latency_n} samples per path after {warmup} warm-up, alternating; "
        f"{repeats} streams of {LONG_STREAM:,} chunks per path; 1-min load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after"
    )
    print()
    print("Time to first chunk (streams of 5) against a sync predict of the same echo, concurrency 1:")
    print()
    print("| path | p50 ms | p99 ms | p50 / sync p50 on the same route |")
    print("|---|---:|---:|---:|")
    for route in ("direct", "server"):
        sync_p50 = statistics.median(first[f"sync, {route}"])
        for kind in ("stream", "sync"):
            values = first[f"{kind}, {route}"]
            p50 = statistics.median(values)
            print(f"| {kind}, {route} | {ms(p50)} | {ms(percentile(values, 0.99))} | {p50 / sync_p50:.2f} |")
    print()
    print(f"Per-chunk cost: a {LONG_STREAM:,}-chunk stream's duration ÷ {LONG_STREAM:,} (median of {repeats}):")
    print()
    serve_chunk = statistics.median(long_streams[SERVE_ROW]) / LONG_STREAM
    print("| path | µs per chunk | / Ray Serve's | streams (s) |")
    print("|---|---:|---:|---|")
    for name, durations in long_streams.items():
        per_chunk = statistics.median(durations) / LONG_STREAM
        runs = ", ".join(f"{d:.3f}" for d in durations)
        print(f"| {name} | {per_chunk * 1e6:.1f} | {per_chunk / serve_chunk:.2f} | {runs} |")

    print()
    print(
        f"{CONCURRENT_STREAMS} concurrent streams × {CONCURRENT_CHUNKS} chunks (median of {repeats}, alternating; "
        "one replica each):"
    )
    print()
    serve_rate = statistics.median(concurrent[SERVE_ROW])
    print("| path | chunks/s | × Ray Serve's | runs (chunks/s) |")
    print("|---|---:|---:|---|")
    for name, rates in concurrent.items():
        rate = statistics.median(rates)
        runs = ", ".join(f"{r:,.0f}" for r in rates)
        print(f"| {name} | {rate:,.0f} | {rate / serve_rate:.2f} | {runs} |")
    print()
    print(f"Cancellation, client close() → the generator's finally in the replica ({cancel_n} samples per path):")
    print()
    print("| path | p50 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|")
    for route, values in cancels.items():
        print(f"| {route} | {ms(statistics.median(values))} | {ms(percentile(values, 0.99))} | {ms(max(values))} |")


if __name__ == "__main__":
    main()
