"""Sync predict, side by side: Launch against Ray Serve's own paths, KServe and bare gRPC.

Why: a sync predict is Launch's hot path (DESIGN.md, "The data path"). This puts one number next to
each alternative a user could pick, measured in one run on one machine with the same trivial echo
(`echo(**args) -> args`), so the cost Launch adds on top of Ray Serve, and how far it is from KServe
and from the bare-gRPC limit, can be read off one table.

Paths (each row: p50/p99 ms at concurrency 1, req/s at concurrency 32):
  1. Launch, direct route (the SDK's default): `SyncEndpoint.predict` (sync gRPC) -> the replica's own
     InferenceService, one hop; the server only hands out the route (docs/serving.md).
     Launch, through the server (`LaunchClient(direct_route=False)`): SDK -> launch-server -> Serve
     handle -> replica, the fallback when the direct route is off or unavailable.
     The SDK is sync, so concurrency is threads: one process with 32 threads sharing a LaunchClient,
     and 4 processes with 8 threads each, to show whether one client process's GIL is the bottleneck.
  2. Ray Serve DeploymentHandle awaited from an asyncio loop in this (driver) process.
  3. Ray Serve's HTTP proxy, driven by aiohttp (keep-alive pool) from a separate process.
  4. KServe's Python model server over gRPC Open Inference Protocol (its own venv, see
     kserve_echo_server.py), client a separate process on raw grpc.aio stubs.
  5. A bare grpc.aio echo server (grpc_echo_server.py), client a separate process: the limit.
Paths 1-3 share one Ray cluster started here (num_cpus=16, with the environment launch-server sets
for a Ray of its own: RAY_SERVE_THROUGHPUT_OPTIMIZED=1, Serve's direct-ingress mode off); the Serve
deployment has max_ongoing_requests=100 and no access log. All servers stay up for the whole run
and share the machine's cores with the clients.

Launch operations, measured in --ops-rounds rounds (2) per run: create -> READY, the first predict on an endpoint that
has scaled to zero, and how long replicas take to reach max_workers=4 under a step of 16 clients.

Run from the repository root (the first run creates benchmarks/.venv-kserve):
    .venv/bin/python -m benchmarks.sync_predict [--repeats 3] [--quick] [--keep-logs]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cloudpickle
import launch

from benchmarks.grpc_echo_server import LoadPlan, measure_async, summarize
from tests.constants import OWN_RAY_STOP_S, SERVING_START_S
from tests.server_process import LaunchServer, free_port, start_launch_server, stop_process
from tests.server_process import log_tail as tail

REPO = Path(__file__).resolve().parent.parent
KSERVE_VENV = REPO / "benchmarks" / ".venv-kserve"
SERVE_APP = "direct-echo"  # must not start with the Launch server's app prefix: its reconciler deletes those
ENV_PARAMS = {"framework_type": "pytorch", "pytorch_image_tag": "x"}
EXPECTED = json.dumps({"x": 1})
NO_ENDPOINTS = "n/a (server has no endpoints yet)"

if __name__ != "__main__":
    # Bundles pickle echo/slow_echo; by value, so replicas need not import this module.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])


def echo(**kwargs: Any) -> Any:
    """The bundle's predict function: return the arguments."""
    return kwargs


def slow_echo(**kwargs: Any) -> Any:
    """For the scale-up step: 0.2 s of work per request, so 16 clients need more than one worker."""
    time.sleep(0.2)
    return kwargs


# ---- processes we start ------------------------------------------------------------------------


@dataclass
class Procs:
    """Every subprocess this run started, so cleanup ends exactly those, by pid."""

    procs: list[subprocess.Popen] = field(default_factory=list)

    def start(self, cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO))
        self.procs.append(proc)
        return proc

    def track(self, server: LaunchServer) -> LaunchServer:
        """Adds a server started elsewhere, so stop_all ends it too."""
        self.procs.append(server.proc)
        return server

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc, timeout=30)


def wait_port_line(proc: subprocess.Popen, log_path: Path, timeout: float = 120.0) -> int:
    """Reads the "PORT <n>" line a helper server prints once it listens."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith("PORT "):
                return int(line.split()[1])
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}:\n{tail(log_path)}")
        time.sleep(0.05)
    raise TimeoutError(f"{proc.args} printed no port in {timeout} s:\n{tail(log_path)}")


def start_own_ray_server(procs: Procs, data_dir: Path, env: dict[str, str], log_path: Path) -> LaunchServer:
    """A launch-server that starts (and on SIGTERM stops) a Ray of its own, under this run's
    RAY_TMPDIR and loopback settings (prepare_environment); returns once Health is SERVING."""
    return procs.track(
        start_launch_server(
            data_dir,
            env,
            unset=("LAUNCH_RAY_ADDRESS",),
            wait="health",
            timeout=SERVING_START_S,
            poll_s=0.1,
            log_path=log_path,
            cwd=REPO,
            stop_timeout=OWN_RAY_STOP_S,
        )
    )


def run_client(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Runs a client process to completion and parses the JSON it prints last."""
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(REPO))
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def ensure_kserve_venv() -> Path:
    """Creates benchmarks/.venv-kserve with `pip install kserve` when missing; never touches .venv.

    A `.gitignore` of `*` inside keeps the venv out of git without editing the repository's."""
    python = KSERVE_VENV / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", "import kserve"], capture_output=True).returncode == 0:
        return python
    print(f"creating {KSERVE_VENV} (pip install kserve, about a minute)", flush=True)
    subprocess.run(["python3", "-m", "venv", str(KSERVE_VENV)], check=True, timeout=300)
    (KSERVE_VENV / ".gitignore").write_text("*\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "kserve"], check=True, timeout=900)
    return python


# ---- client sides run as subprocesses ----------------------------------------------------------


def sdk_client(args: argparse.Namespace) -> dict[str, Any]:
    """One SDK client process (API key from $LAUNCH_API_KEY). mode=latency: one thread, sequential
    calls. mode=rps: `threads` threads sharing one LaunchClient, all starting at wall time
    `start_at` so several such processes count the same window."""
    plan = LoadPlan.from_cli(args)
    client = launch.LaunchClient(endpoint=args.target, direct_route=args.route == "direct")
    endpoint = client.get_model_endpoint(args.endpoint_name)
    if not isinstance(endpoint, launch.SyncEndpoint):
        raise RuntimeError(f"{args.endpoint_name!r} is not a sync endpoint: {endpoint!r}")
    request = launch.EndpointRequest(args={"x": 1}, return_pickled=False)
    lock = threading.Lock()
    errors = 0

    def one() -> float | None:
        nonlocal errors
        start = time.perf_counter()
        try:
            response = endpoint.predict(request, timeout=30)
            if response.status != "SUCCESS" or response.result != EXPECTED:
                raise AssertionError(repr(response))
        except Exception as exc:  # noqa: BLE001 - counted; the run gives up after max_errors
            with lock:
                errors += 1
                if errors == 1:
                    print(f"first error: {exc!r}", file=sys.stderr)
                if errors >= plan.max_errors:
                    raise RuntimeError(f"{errors} failed predicts, last: {exc!r}") from exc
            return None
        return time.perf_counter() - start

    if args.mode == "latency":
        for _ in range(plan.warmup):
            one()
        latencies = [d for d in (one() for _ in range(plan.latency_n)) if d is not None]
        return summarize(latencies, 0, 0, errors)

    for _ in range(3):  # connect before the clock starts
        one()
    t0 = args.start_at + plan.rps_warmup_s
    t1 = t0 + plan.rps_s
    per_thread_cap = max(1, plan.max_requests // args.threads)
    counts = [0] * args.threads

    def worker(i: int) -> None:
        time.sleep(max(0.0, args.start_at - time.time()))
        for _ in range(per_thread_cap):
            if time.time() >= t1:
                break
            if one() is not None and t0 <= time.time() < t1:
                counts[i] += 1

    late = time.time() > t0
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=plan.rps_warmup_s + plan.rps_s + 120)
    return {"rps_completed": sum(counts), "errors": errors, "late": late}


def http_client(args: argparse.Namespace) -> dict[str, Any]:
    """Drives Serve's HTTP proxy with aiohttp: one session, keep-alive pool of `concurrency` connections."""
    import aiohttp

    plan = LoadPlan.from_cli(args)

    async def run() -> dict[str, Any]:
        connector = aiohttp.TCPConnector(limit=plan.concurrency, force_close=False)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:

            async def call() -> None:
                async with session.post(args.url, json={"x": 1}) as response:
                    body = await response.read()
                    if response.status != 200 or json.loads(body) != {"x": 1}:
                        raise AssertionError(f"{response.status} {body[:200]!r}")

            return await measure_async(call, plan)

    return asyncio.run(run())


# ---- Ray Serve paths ---------------------------------------------------------------------------


def start_ray(http_port: int) -> str:
    """Starts the run's Ray cluster and Serve (HTTP proxy on 127.0.0.1) and deploys the echo app.
    Returns the GCS address the Launch server joins."""
    import ray
    from ray import serve

    ray.init(num_cpus=16, include_dashboard=False, log_to_driver=False)
    serve.start(
        http_options={"host": "127.0.0.1", "port": http_port},
        logging_config={"enable_access_log": False},
    )

    @serve.deployment(max_ongoing_requests=100, logging_config={"enable_access_log": False})
    class Echo:
        """The same echo for both Serve paths: `call` for the handle, `__call__` for HTTP."""

        async def call(self, args: dict[str, Any]) -> Any:
            return echo(**args)

        async def __call__(self, request: Any) -> Any:
            return echo(**(await request.json()))

    serve.run(Echo.bind(), name=SERVE_APP, route_prefix="/echo")
    return ray.get_runtime_context().gcs_address


class HandlePath:
    """Path 2: a DeploymentHandle awaited from an asyncio loop in this driver process.

    The loop runs for the whole run in its own thread: a throughput-optimized handle's router and
    its long-poll client live on the loop that first used it and stop getting controller updates
    while that loop is not running; Serve's shutdown must also reach the cached handles there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="handle-loop", daemon=True)
        self.thread.start()

    def measure(self, plan: LoadPlan) -> dict[str, Any]:
        from ray import serve

        async def run() -> dict[str, Any]:
            handle = serve.get_app_handle(SERVE_APP)

            async def call() -> None:
                result = await handle.call.remote({"x": 1})
                if result != {"x": 1}:
                    raise AssertionError(repr(result))

            return await measure_async(call, plan)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=600)

    def stop_ray(self) -> None:
        """serve.shutdown_async() on the handles' loop, then ray.shutdown(), then the loop."""
        import ray
        from ray import serve

        try:
            if ray.is_initialized():
                try:
                    asyncio.run_coroutine_threadsafe(serve.shutdown_async(), self.loop).result(timeout=120)
                finally:
                    ray.shutdown()
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            if not self.thread.is_alive():
                self.loop.close()


# ---- Launch ------------------------------------------------------------------------------------


@dataclass
class LaunchSetup:
    """The Launch server and the benchmark endpoint, or why the Launch row is n/a."""

    address: str
    api_key: str
    client: launch.LaunchClient
    endpoint_name: str = "echo-ep"
    unavailable: str | None = None
    create_to_ready_s: float | None = None
    ops: dict[str, str] = field(default_factory=dict)


def wait_ready(endpoint: launch.SyncEndpoint, timeout: float) -> float:
    """Seconds until status() is READY; raises on UPDATE_FAILED or timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        status = endpoint.status()
        if status == "READY":
            return time.monotonic() - start
        if status == "UPDATE_FAILED":
            raise RuntimeError(f"UPDATE_FAILED: {endpoint.model_endpoint.status_reason}")
        time.sleep(0.25)
    raise TimeoutError(f"not READY after {timeout} s (last {endpoint.model_endpoint.status})")


def wait_workers(endpoint: launch.SyncEndpoint, want: int, timeout: float, poll: float = 0.25) -> float | None:
    """Seconds until worker_settings()["available_workers"] == want, or None after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if endpoint.worker_settings()["available_workers"] == want:
            return time.monotonic() - start
        time.sleep(poll)
    return None


def create_endpoint(
    client: launch.LaunchClient, name: str, bundle: launch.ModelBundle, **workers: int
) -> tuple[launch.SyncEndpoint, float]:
    """Creates a 1-CPU sync endpoint and waits for READY; returns it and the create -> READY seconds."""
    start = time.monotonic()
    endpoint = client.create_model_endpoint(name, bundle, cpus=1, memory="1Gi", endpoint_type="sync", **workers)
    assert isinstance(endpoint, launch.SyncEndpoint)
    wait_ready(endpoint, timeout=240)
    return endpoint, time.monotonic() - start


def server_on_ray(procs: Procs, root: Path, gcs_address: str, prefix: str) -> LaunchServer:
    """A launch-server (tracked by `procs`) joined to the run's Ray cluster, its data and log under
    `root`, its Serve applications named with `prefix` and a random suffix (so they never clash
    with another benchmark's), answering health checks."""
    return procs.track(
        start_launch_server(
            root / "launch-data",
            {"LAUNCH_SERVE_APP_PREFIX": f"{prefix}{uuid.uuid4().hex[:6]}"},
            ray_address=gcs_address,
            wait="health",
            timeout=SERVING_START_S,
            poll_s=0.1,
            log_path=root / "launch-server.log",
            cwd=REPO,
        )
    )


def start_launch(procs: Procs, root: Path, gcs_address: str) -> LaunchSetup:
    """Starts launch-server on the run's Ray cluster and creates the echo endpoint (min=max=1, per_worker=32)."""
    log_path = root / "launch-server.log"
    server = server_on_ray(procs, root, gcs_address, "lbench")
    address, api_key = server.address, server.dev_api_key()
    client = launch.LaunchClient(api_key=api_key, endpoint=address)
    setup = LaunchSetup(address=address, api_key=api_key, client=client)
    bundle = client.create_model_bundle("echo", env_params=ENV_PARAMS, predict_fn_or_cls=echo, requirements=[])
    try:
        endpoint, setup.create_to_ready_s = create_endpoint(
            client, setup.endpoint_name, bundle, min_workers=1, max_workers=1, per_worker=32
        )
        response = endpoint.predict(launch.EndpointRequest(args={"x": 1}, return_pickled=False), timeout=60)
        if response.status != "SUCCESS" or response.result != EXPECTED:
            raise RuntimeError(f"unexpected predict response {response!r}")
    except launch.UnimplementedError:
        setup.unavailable = NO_ENDPOINTS
    except Exception as exc:  # noqa: BLE001 - the other paths still run; the row says why
        setup.unavailable = f"n/a ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
        print(f"Launch path failed: {exc}\n--- launch-server log ---\n{tail(log_path)}", file=sys.stderr)
    return setup


def launch_rows(setup: LaunchSetup, plan: LoadPlan, sdk_procs: list[int]) -> dict[str, dict[str, Any]]:
    """Path 1, both routes: latency from one SDK process, then req/s with each client-process layout."""
    rows: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        rows.update(launch_route_rows(setup, plan, sdk_procs, route))
    return rows


def launch_route_rows(
    setup: LaunchSetup, plan: LoadPlan, sdk_procs: list[int], route: str
) -> dict[str, dict[str, Any]]:
    env = {**os.environ, "LAUNCH_API_KEY": setup.api_key}
    base = [sys.executable, "-m", "benchmarks.sync_predict", "_sdk-client", "--target", setup.address]
    base += ["--endpoint-name", setup.endpoint_name, "--route", route, *plan.to_cli()]
    latency = run_client([*base, "--mode", "latency"], timeout=300, env=env)
    rows: dict[str, dict[str, Any]] = {}
    for n in sdk_procs:
        threads = plan.concurrency // n
        start_at = time.time() + 3 + n  # every process imports and connects before the clock starts
        cmd = [*base, "--mode", "rps", "--threads", str(threads), "--start-at", str(start_at)]
        timeout = 3 + n + plan.rps_warmup_s + plan.rps_s + 180
        running = [
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(REPO))
            for _ in range(n)
        ]
        outputs = []
        for proc in running:
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"SDK client exited {proc.returncode}:\n{err[-3000:]}")
            outputs.append(json.loads(out.strip().splitlines()[-1]))
        if any(o["late"] for o in outputs):
            print(f"warning: an SDK client process ({n} procs) started after its warm-up window", file=sys.stderr)
        completed = sum(o["rps_completed"] for o in outputs)
        rows[f"launch-{route}-{n}"] = {
            "p50_ms": latency["p50_ms"],
            "p99_ms": latency["p99_ms"],
            "rps": completed / plan.rps_s,
            "errors": latency["errors"] + sum(o["errors"] for o in outputs),
        }
    return rows


def launch_operations(setup: LaunchSetup, round_: int = 0) -> dict[str, str]:
    """Create -> READY, first predict from zero workers, time to max_workers under a load step.
    Each round uses its own endpoints, and a fresh client for the cold start, so no route or
    replica of an earlier round can answer it."""
    ops: dict[str, str] = {}
    if round_ == 0:
        ops["create -> READY (min=max=1)"] = f"{setup.create_to_ready_s:.1f} s"
    client = setup.client
    suffix = f"-{round_}" if round_ else ""
    request = launch.EndpointRequest(args={"x": 1}, return_pickled=False)

    echo_bundle = client.get_model_bundle("echo")
    zero, ready_s = create_endpoint(
        client, f"echo-zero{suffix}", echo_bundle, min_workers=0, max_workers=1, per_worker=1
    )
    ops["create -> READY (min=0)"] = f"{ready_s:.1f} s"
    # Run a replica once and see it counted (worker counts come from the server's reconciler, which
    # polls Serve, so they lag), then wait for the scale-down: the cold start is observed, not assumed.
    zero.predict(request, timeout=120)
    last_request = time.monotonic()
    seen_up = wait_workers(zero, 1, timeout=30)
    to_zero = wait_workers(zero, 0, timeout=60) if seen_up is not None else None
    if seen_up is None:
        ops["first predict from zero workers"] = "n/a (the warm-up request's worker was never reported)"
    elif to_zero is None:
        ops["first predict from zero workers"] = "n/a (did not reach 0 available workers in 60 s)"
    else:
        ops["0 available workers, after the last request"] = f"{time.monotonic() - last_request:.1f} s"
        # A replica that Serve is stopping may still answer on its direct route for a moment:
        # wait until the server routes no replica at all, and ask with a client that has no route.
        cold = launch.LaunchClient(api_key=setup.api_key, endpoint=setup.address)
        deadline = time.monotonic() + 30
        while cold._get_route(zero.model_endpoint.name, 10).replica_addresses and time.monotonic() < deadline:  # noqa: SLF001
            time.sleep(0.2)
        zero = cold.get_model_endpoint(zero.model_endpoint.name)
        start = time.monotonic()
        response = zero.predict(request, timeout=120)
        elapsed = time.monotonic() - start
        ops["first predict from zero workers"] = f"{elapsed:.2f} s ({response.status})"

    slow_bundle = client.create_model_bundle(
        f"slow-echo{suffix}", env_params=ENV_PARAMS, predict_fn_or_cls=slow_echo, requirements=[]
    )
    scale, ready_s = create_endpoint(
        client, f"scale-ep{suffix}", slow_bundle, min_workers=1, max_workers=4, per_worker=1
    )
    ops["create -> READY (min=1, a later endpoint)"] = f"{ready_s:.1f} s"
    stop = threading.Event()
    deadline = time.monotonic() + 120
    outcomes = {"ok": 0, "failed": 0}
    lock = threading.Lock()

    def load() -> None:
        for _ in range(1000):
            if stop.is_set() or time.monotonic() > deadline:
                return
            try:
                ok = scale.predict(request, timeout=60).status == "SUCCESS"
            except launch.LaunchError:
                ok = False
                time.sleep(0.1)
            with lock:
                outcomes["ok" if ok else "failed"] += 1

    threads = [threading.Thread(target=load, daemon=True) for _ in range(16)]
    for thread in threads:
        thread.start()
    try:
        reached = wait_workers(scale, 4, timeout=60)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=70)
    ops["1 -> 4 workers under 16 clients x 0.2 s requests"] = (
        f"{reached:.1f} s" if reached is not None else "n/a (not 4 available workers within 60 s)"
    )
    ops["requests during the step (ok / failed)"] = f"{outcomes['ok']} / {outcomes['failed']}"
    return ops


# ---- the run -----------------------------------------------------------------------------------


ROUTES = ("direct", "server")
LABELS = {
    "launch-direct-1": "Launch, direct route: SDK predict -> replica (1 client proc x 32 threads)",
    "launch-direct-4": "Launch, direct route: same, 4 client procs x 8 threads",
    "launch-server-1": "Launch through the server: SDK -> launch-server -> Serve handle -> replica (1 x 32)",
    "launch-server-4": "Launch through the server: same, 4 client procs x 8 threads",
    "handle": "Ray Serve DeploymentHandle, asyncio in the driver",
    "http": "Ray Serve HTTP proxy (aiohttp keep-alive, own process)",
    "kserve": "KServe model server, gRPC OIP (grpc.aio stubs, own process)",
    "grpc": "bare grpc.aio echo (own process)",
}


def fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def table(runs: list[dict[str, dict[str, Any]]], launch_na: str | None, sdk_procs: list[int]) -> str:
    """Markdown table of medians over repeats, with ratios against the handle and the HTTP proxy."""

    def median(key: str, metric: str) -> float | None:
        values = [run[key][metric] for run in runs if key in run]
        return statistics.median(values) if values else None

    keys = [f"launch-{route}-{n}" for route in ROUTES for n in sdk_procs] + ["handle", "http", "kserve", "grpc"]
    lines = [
        "| path | p50 ms | p99 ms | req/s @32 | p50 / handle | req/s / handle | p50 / HTTP proxy "
        "| req/s / HTTP proxy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    handle = (median("handle", "p50_ms"), median("handle", "rps"))
    http = (median("http", "p50_ms"), median("http", "rps"))
    for key in keys:
        label = (
            LABELS[key] if key in LABELS else f"Launch ({key.split('-')[1]} route): {key.split('-')[-1]} client procs"
        )
        if key.startswith("launch") and launch_na:
            lines.append(f"| {label} | {launch_na} | | | | | | |")
            continue
        p50, p99, rps = median(key, "p50_ms"), median(key, "p99_ms"), median(key, "rps")
        lines.append(
            f"| {label} | {fmt(p50, 2)} | {fmt(p99, 2)} | {fmt(rps, 0)} | {ratio(p50, handle[0])} | "
            f"{ratio(rps, handle[1])} | {ratio(p50, http[0])} | {ratio(rps, http[1])} |"
        )
    return "\n".join(lines)


def raw_runs(runs: list[dict[str, dict[str, Any]]]) -> str:
    """Per-repeat values, so the spread behind each median is visible."""
    lines = []
    for key in runs[0]:
        values = [
            f"{run[key]['p50_ms']:.2f}/{run[key]['p99_ms']:.2f} ms, {run[key]['rps']:.0f} req/s"
            for run in runs
            if key in run
        ]
        lines.append(f"- {key}: " + "; ".join(values))
    return "\n".join(lines)


def prepare_environment(root: Path) -> None:
    """Environment every Ray process (and the Launch server, which inherits it) must see before Ray
    starts: this run's own temp dir, then exactly what launch-server sets for a Ray of its own
    (loopback node address, throughput-optimized Serve with its direct-ingress mode off), so the
    cluster the server joins here behaves like the one it would start."""
    from launch_server.serving.cluster import ClusterOptions, configure_environment

    os.environ["RAY_TMPDIR"] = str(root / "ray")
    configure_environment(ClusterOptions())
    (root / "ray").mkdir()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="whole comparisons to run; medians are reported")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repeat, fewer requests")
    parser.add_argument("--sdk-procs", default="1,4", help="client-process counts for the Launch req/s @32 rows")
    parser.add_argument("--skip-launch-ops", action="store_true", help="skip create/cold-start/scale-up timings")
    parser.add_argument("--ops-rounds", type=int, default=2, help="rounds of the create/cold-start/scale-up timings")
    parser.add_argument("--ops-only", action="store_true", help="only the Launch create/cold-start/scale-up timings")
    parser.add_argument("--keep-logs", action="store_true", help="keep the run's temp dir (server and Ray logs)")
    args = parser.parse_args()
    plan = LoadPlan.quick() if args.quick else LoadPlan()
    repeats = 1 if args.quick else args.repeats
    sdk_procs = [int(n) for n in args.sdk_procs.split(",")]

    kserve_python = ensure_kserve_venv()
    load_before = os.getloadavg()[0]
    root = Path(tempfile.mkdtemp(prefix="sync-predict-"))
    procs = Procs()
    runs: list[dict[str, dict[str, Any]]] = []
    ops: dict[str, str] = {}
    launch_na: str | None = "n/a (not started)"
    handle_path = HandlePath()
    try:
        prepare_environment(root)
        grpc_log = root / "grpc-echo.log"
        grpc_proc = procs.start([sys.executable, "benchmarks/grpc_echo_server.py", "serve"], grpc_log)
        grpc_port = wait_port_line(grpc_proc, grpc_log)
        kserve_log = root / "kserve.log"
        kserve_grpc, kserve_http = free_port(), free_port()
        kserve_cmd = [str(kserve_python), "benchmarks/kserve_echo_server.py", "serve"]
        kserve_cmd += ["--grpc-port", str(kserve_grpc), "--http-port", str(kserve_http)]
        kserve_proc = procs.start(kserve_cmd, kserve_log)
        wait_port_line(kserve_proc, kserve_log)

        http_port = free_port()
        t = time.monotonic()
        gcs_address = start_ray(http_port)
        print(f"Ray + Serve + echo app up in {time.monotonic() - t:.1f} s (GCS {gcs_address})", flush=True)
        setup: LaunchSetup | None = None
        try:
            setup = start_launch(procs, root, gcs_address)
            launch_na = setup.unavailable
        except Exception as exc:  # noqa: BLE001 - the other paths still run; the row says why
            launch_na = f"n/a (server: {type(exc).__name__})"
            print(f"launch-server did not come up: {exc}", file=sys.stderr)
        if setup is not None and launch_na is None:
            print(f"Launch: echo-ep READY in {setup.create_to_ready_s:.1f} s", flush=True)
        else:
            print(f"Launch: {launch_na}", flush=True)

        client_plan = plan.to_cli()
        for r in range(0 if args.ops_only else repeats):
            run: dict[str, dict[str, Any]] = {}
            if setup is not None and launch_na is None:
                run.update(launch_rows(setup, plan, sdk_procs))
            run["handle"] = handle_path.measure(plan)
            run["http"] = run_client(
                [sys.executable, "-m", "benchmarks.sync_predict", "_http-client"]
                + ["--url", f"http://127.0.0.1:{http_port}/echo", *client_plan],
                timeout=300,
            )
            run["kserve"] = run_client(
                [str(kserve_python), "benchmarks/kserve_echo_server.py", "client"]
                + ["--target", f"127.0.0.1:{kserve_grpc}", *client_plan],
                timeout=300,
            )
            run["grpc"] = run_client(
                [sys.executable, "benchmarks/grpc_echo_server.py", "client"]
                + ["--target", f"127.0.0.1:{grpc_port}", *client_plan],
                timeout=300,
            )
            runs.append(run)
            summary = ", ".join(f"{k} {v['p50_ms']:.2f} ms / {v['rps']:.0f} rps" for k, v in run.items())
            print(f"repeat {r + 1}/{repeats}: {summary}", flush=True)

        if setup is not None and launch_na is None and not args.skip_launch_ops:
            try:
                rounds = [launch_operations(setup, r) for r in range(args.ops_rounds)]
                ops = {
                    k: ", ".join(o[k] for o in rounds if k in o) for k in dict.fromkeys(k for o in rounds for k in o)
                }
            except Exception as exc:  # noqa: BLE001 - the comparison is still worth printing
                ops = {"launch operations": f"failed: {type(exc).__name__}: {exc}"}
                print(f"--- launch-server log ---\n{tail(root / 'launch-server.log')}", file=sys.stderr)
    finally:
        procs.stop_all()
        handle_path.stop_ray()
        if args.keep_logs:
            print(f"logs kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)

    print()
    print(
        f"Sync predict, trivial echo; {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}; {'quick' if args.quick else 'full'}: medians of {repeats} repeat(s), "
        f"concurrency 1: {plan.latency_n} requests after {plan.warmup} warm-up; concurrency {plan.concurrency}: "
        f"{plan.rps_s:g} s counted after {plan.rps_warmup_s:g} s warm-up; 1-min load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after (others' work on the machine shows here)"
    )
    if runs:
        print()
        print(table(runs, launch_na, sdk_procs))
        print()
        print("Per repeat (p50/p99 at concurrency 1, req/s at 32):")
        print(raw_runs(runs))
    errors = {k: v.get("errors", 0) for run in runs for k, v in run.items() if v.get("errors")}
    if errors:
        print(f"\nfailed calls: {errors}")
    if ops:
        print("\nLaunch operations:")
        for name, value in ops.items():
            print(f"- {name}: {value}")


def client_main(argv: list[str]) -> None:
    """Entry point of the client subprocesses (`_sdk-client`, `_http-client`); prints one JSON line."""
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p_sdk = sub.add_parser("_sdk-client")
    p_sdk.add_argument("--target", required=True)
    p_sdk.add_argument("--endpoint-name", required=True)
    p_sdk.add_argument("--mode", choices=["latency", "rps"], required=True)
    p_sdk.add_argument("--threads", type=int, default=32)
    p_sdk.add_argument("--route", choices=ROUTES, default="direct")
    p_sdk.add_argument("--start-at", type=float, default=0.0)
    LoadPlan().add_cli(p_sdk)
    p_http = sub.add_parser("_http-client")
    p_http.add_argument("--url", required=True)
    LoadPlan().add_cli(p_http)
    args = parser.parse_args(argv)
    result = sdk_client(args) if args.command == "_sdk-client" else http_client(args)
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        client_main(sys.argv[1:])
    else:
        main()
