"""Dynamic batching, side by side: a Launch endpoint whose predict function is `@launch.batched`
against the same forward pass one row per call, and against Ray Serve's own `@serve.batch`.

Why: batching is only worth having if, under load, a replica that runs many rows per call turns
out several times the rows of one that runs them one by one, about as many as Ray Serve's own
batching, without making a lone request slower. One run, one machine, one Ray cluster, one model.

Model: a numpy MLP, 1024 -> 1024 -> 1024 -> 1024 float32 (ReLU between), its weights made from a
fixed seed in the bundle's load_model_fn (so the pickle is small). A request is one row. Input
encoding: `args={"row": <base64 of the 1,024 little-endian float32>}` (5.5 kB of JSON). Measured
here before choosing: a JSON list of 1,024 floats is 21 kB, costs ~0.19 ms to parse into an array
and ~0.5 ms to encode, against ~0.77 ms for the 1-row forward pass itself, so it would dominate;
the base64 form decodes in ~0.03 ms. The same input row goes to every path. The answer is small,
`{"argmax": i, "sum": s}` of the output row, so the measure is the forward pass and the request
path, not encoding 1,024 floats back. The batch job's inputs cannot be rows: 100,000 of them would
be 550 MB in the one CreateBatchJob message (at most 64 MiB), so a job input is `{"shift": k}`,
the model's own fixed row rolled by k (np.roll, ~5 us), which the batch function handles too.

Rows of the tables:
  1. rows/s at concurrency 64 (4 client processes x 16 threads, each thread a loop of sync
     `endpoint.predict` on the SDK's default direct route, all counting the same window):
     Launch batched (`@launch.batched(max_batch_size=64)`), Launch unbatched (the same forward
     pass, one row per call), the batched bundle on an endpoint whose own max_batch_wait_ms=2
     lets a batch wait for company, Launch batched through the server (`direct_route=False`), a
     batch function that does no work (it answers the fixed row's precomputed result: what the
     request path alone carries, the ceiling of any batch function here), and a Ray Serve
     deployment of the same model with `@serve.batch(max_batch_size=64)` (Serve's default
     batch_wait_timeout_s; max_ongoing_requests=64, one replica, num_cpus=1), driven by 64 tasks
     awaiting handle calls on an asyncio loop in this driver. Each row also shows where the CPU
     went during its window (/proc: clients, replicas, launch-server, driver, the rest).
     Goals: batched >= 3x unbatched, batched >= 1x Serve.
  2. p50 at concurrency 1, batched against unbatched, requests alternating between the two
     endpoints from one thread (goal <= 1.05x).
  3. p95 at concurrency 64 of the calls counted in 1 (goal: batched lower).
  4. A batch job of 100,000 rows with the batch function against the plain function: wall time
     (submit -> SUCCESS, the job's own endpoint's start included) and rows/s.
Paths rotate between repeats so drift hits each alike; tables quote medians and ratios.
Endpoints: sync, cpus=1, min_workers=max_workers=1, per_worker=64. The bundles list `numpy` in
their requirements (installed by Ray's runtime_env pip into a virtualenv that sees .venv's
packages); create -> READY is printed. The batch function appends each batch's size to a file,
so the tables show the batch sizes a replica really ran.

BLAS: this machine sets OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (for an old OpenBLAS), which slow a
current numpy; this script re-executes itself without them, so its driver, its client processes,
the launch-server it starts and every replica lack them. Nothing outside the run changes. The BLAS
that ran (threadpoolctl) is printed from the driver and from inside each replica.

Run from the repository root (under the machine's Ray lock):
    .venv/bin/python -m benchmarks.batching [--quick] [--repeats 3] [--json PATH] [--job-rows N]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import cloudpickle
import launch

from benchmarks.sync_predict import ENV_PARAMS, HandlePath, Procs, prepare_environment, server_on_ray, wait_ready
from tests.server_process import log_tail

REPO = Path(__file__).resolve().parent.parent
SERVE_APP = "batch-mlp"  # must not start with the Launch server's app prefix
WIDTH = 1024
LAYERS = 3
SEED = 20240611
MAX_BATCH = 64
CONCURRENCY = 64
CLIENT_PROCS = 4
WAIT_MS = 2  # the max_batch_wait_ms of the "batched, wait" endpoint (an endpoint setting)
# Each Launch row of the load table: (endpoint, route).
ENDPOINT_OF_PATH = {
    "batched": ("batched", "direct"),
    "unbatched": ("unbatched", "direct"),
    "batched-wait": ("batched-wait", "direct"),
    "batched-server": ("batched", "server"),
    "ceiling": ("ceiling", "direct"),
}
BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
REQUIREMENTS = ["numpy"]
# Every endpoint of the run: one sync worker that holds all the load's requests.
ENDPOINT_OPTIONS: dict[str, Any] = {
    "endpoint_type": "sync",
    "cpus": 1,
    "memory": "2Gi",
    "min_workers": 1,
    "max_workers": 1,
    "per_worker": CONCURRENCY,
}
JOB_OPTIONS = {"cpus": 1, "memory": "2Gi", "max_workers": 1, "pyspark_partition_size": 1000}

if __name__ != "__main__":
    cloudpickle.register_pickle_by_value(sys.modules[__name__])


# ---- the model (runs in the replicas, the Serve deployment and the driver) ------------------------


def make_model(sizes_path: str | None = None) -> dict[str, Any]:
    """Weights (and the fixed input row) from a fixed seed; where the batch sizes are appended."""
    import numpy as np

    rng = np.random.default_rng(SEED)
    weights = [(rng.standard_normal((WIDTH, WIDTH)) / math.sqrt(WIDTH)).astype(np.float32) for _ in range(LAYERS)]
    base = rng.standard_normal(WIDTH).astype(np.float32)
    return {"weights": weights, "base": base, "sizes_path": sizes_path}


def forward(model: dict[str, Any], x: Any) -> Any:
    import numpy as np

    for i, w in enumerate(model["weights"]):
        x = x @ w
        if i < LAYERS - 1:
            x = np.maximum(x, 0.0)
    return x


def row_of(model: dict[str, Any], item: dict[str, Any]) -> Any:
    import numpy as np

    if "row" in item:
        return np.frombuffer(base64.b64decode(item["row"]), dtype=np.float32)
    return np.roll(model["base"], int(item["shift"]) % WIDTH)


def answer_of(y: Any) -> dict[str, Any]:
    return {"argmax": int(y.argmax()), "sum": round(float(y.sum()), 2)}


def blas_info() -> dict[str, Any]:
    """Which BLAS this process runs, and whether the slowing variables reached it."""
    import numpy as np

    try:
        import threadpoolctl

        pools = [
            {k: p.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "threading_layer")}
            for p in threadpoolctl.threadpool_info()
        ]
    except ImportError:
        pools = "threadpoolctl not installed"
    return {
        "pid": os.getpid(),
        "numpy": np.__version__,
        "pools": pools,
        "env": {k: os.environ.get(k) for k in BLAS_ENV},
    }


def record(model: dict[str, Any], size: int) -> None:
    if model["sizes_path"]:
        with open(model["sizes_path"], "a") as out:
            out.write(f"{size}\n")


def load_model_fn(sizes_path: str) -> Any:
    def load_model() -> dict[str, Any]:
        return make_model(sizes_path)

    return load_model


def load_batched(model: dict[str, Any]) -> Any:
    """The batch function: one forward pass over every row of the batch."""
    import launch
    import numpy as np

    @launch.batched(max_batch_size=MAX_BATCH)
    def predict(inputs: list[dict[str, Any]]) -> list[Any]:
        record(model, len(inputs))
        out: list[Any] = [None] * len(inputs)
        rows, where = [], []
        for i, item in enumerate(inputs):
            if "info" in item:
                out[i] = blas_info()
            else:
                rows.append(row_of(model, item))
                where.append(i)
        if rows:
            ys = forward(model, np.stack(rows))
            for j, i in enumerate(where):
                out[i] = answer_of(ys[j])
        return out

    return predict


def load_ceiling(model: dict[str, Any]) -> Any:
    """A batch function that does no work: each row's answer is the one the model gives the fixed
    row, computed once at load. What it serves is the request path's own ceiling."""
    import launch

    answer = answer_of(forward(model, model["base"][None, :])[0])

    @launch.batched(max_batch_size=MAX_BATCH)
    def predict(inputs: list[dict[str, Any]]) -> list[Any]:
        record(model, len(inputs))
        return [blas_info() if "info" in item else answer for item in inputs]

    return predict


def load_single(model: dict[str, Any]) -> Any:
    """The same forward pass, one row per call."""

    def predict(**item: Any) -> Any:
        record(model, 1)
        if "info" in item:
            return blas_info()
        return answer_of(forward(model, row_of(model, item)[None, :])[0])

    return predict


# ---- client processes ------------------------------------------------------------------------------


def sdk_client(args: argparse.Namespace) -> dict[str, Any]:
    """One load process: `threads` threads, each a loop of sync predicts, all starting at wall time
    `start_at`; counts and latencies of the calls that end inside [start_at + warmup, + window)."""
    client = launch.LaunchClient(endpoint=args.target, direct_route=args.route == "direct")
    endpoint = client.get_model_endpoint(args.endpoint_name)
    request = launch.EndpointRequest(args=json.loads(args.args_json), return_pickled=False)
    expected = json.loads(args.expected)
    t0 = args.start_at + args.warmup_s
    t1 = t0 + args.window_s
    counts = [0] * args.threads
    latencies: list[list[float]] = [[] for _ in range(args.threads)]
    errors: list[str] = []

    def worker(i: int) -> None:
        time.sleep(max(0.0, args.start_at - time.time()))
        while time.time() < t1:
            start = time.perf_counter()
            try:
                response = endpoint.predict(request, timeout=60)
                if response.status != "SUCCESS" or not same(json.loads(response.result), expected):
                    raise AssertionError(f"{response.status} {response.result!r} {response.traceback}")
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors.append(repr(exc)[:300])
                if len(errors) > 50:
                    return
                continue
            now = time.time()
            if t0 <= now < t1:
                counts[i] += 1
                latencies[i].append(time.perf_counter() - start)

    for _ in range(2):  # connect (and learn the route) before the clock starts
        endpoint.predict(request, timeout=60)
    late = time.time() > t0
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=args.warmup_s + args.window_s + 120)
    return {
        "completed": sum(counts),
        "latencies": [x for part in latencies for x in part],
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "late": late,
    }


def same(got: dict[str, Any], want: dict[str, Any]) -> bool:
    """One answer against the driver's: same argmax, sum within float32 summation-order noise."""
    return got.get("argmax") == want["argmax"] and abs(got["sum"] - want["sum"]) <= 1e-3 * max(1.0, abs(want["sum"]))


def client_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command")
    parser.add_argument("--target", required=True)
    parser.add_argument("--endpoint-name", required=True)
    parser.add_argument("--route", choices=["direct", "server"], default="direct")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--start-at", type=float, required=True)
    parser.add_argument("--warmup-s", type=float, required=True)
    parser.add_argument("--window-s", type=float, required=True)
    parser.add_argument("--args-json", required=True)
    parser.add_argument("--expected", required=True)
    print(json.dumps(sdk_client(parser.parse_args(argv))))


# ---- the driver ------------------------------------------------------------------------------------


def start_ray() -> str:
    """The run's Ray cluster and Serve with the @serve.batch deployment; returns the GCS address."""
    import numpy as np
    import ray
    from ray import serve

    ray.init(num_cpus=16, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": 0}, logging_config={"enable_access_log": False})

    @serve.deployment(
        max_ongoing_requests=CONCURRENCY,
        num_replicas=1,
        ray_actor_options={"num_cpus": 1},
        logging_config={"enable_access_log": False},
    )
    class Mlp:
        def __init__(self) -> None:
            self.model = make_model()
            self.sizes: Counter[int] = Counter()

        @serve.batch(max_batch_size=MAX_BATCH)  # batch_wait_timeout_s: Serve's default
        async def predict(self, items: list[dict[str, Any]]) -> list[Any]:
            self.sizes[len(items)] += 1
            ys = forward(self.model, np.stack([row_of(self.model, item) for item in items]))
            return [answer_of(y) for y in ys]

        async def info(self) -> dict[str, Any]:
            return {**blas_info(), "sizes": dict(self.sizes)}

        async def reset(self) -> None:
            self.sizes.clear()

    serve.run(Mlp.bind(), name=SERVE_APP, route_prefix=None)
    return ray.get_runtime_context().gcs_address


class ServePath(HandlePath):
    """Ray Serve: handle calls awaited from the run-long asyncio loop HandlePath keeps."""

    def call(self, method: str, *args: Any) -> Any:
        from ray import serve

        async def run() -> Any:
            return await getattr(serve.get_app_handle(SERVE_APP), method).remote(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=120)

    def load(self, item: dict[str, Any], expected: dict[str, Any], warmup_s: float, window_s: float) -> dict[str, Any]:
        from ray import serve

        async def run() -> dict[str, Any]:
            handle = serve.get_app_handle(SERVE_APP)
            await handle.predict.remote(item)
            start_at = time.time()
            t0, t1 = start_at + warmup_s, start_at + warmup_s + window_s
            latencies: list[float] = []
            errors = 0

            async def loop() -> None:
                nonlocal errors
                while time.time() < t1:
                    start = time.perf_counter()
                    result = await handle.predict.remote(item)
                    if not same(result, expected):
                        errors += 1
                        continue
                    if t0 <= time.time() < t1:
                        latencies.append(time.perf_counter() - start)

            await asyncio.gather(*(loop() for _ in range(CONCURRENCY)))
            return {"completed": len(latencies), "latencies": latencies, "errors": errors}

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=warmup_s + window_s + 120)


def launch_load(
    address: str,
    api_key: str,
    name: str,
    route: str,
    item: dict[str, Any],
    expected: dict[str, Any],
    plan: Plan,
    cpu: CpuShares,
) -> dict[str, Any]:
    """CLIENT_PROCS processes x CONCURRENCY / CLIENT_PROCS threads on one endpoint."""
    env = {**os.environ, "LAUNCH_API_KEY": api_key}
    start_at = time.time() + 4 + CLIENT_PROCS  # every process imports and connects first
    shares = cpu.during(start_at + plan.warmup_s, plan.window_s)
    cmd = [sys.executable, "-m", "benchmarks.batching", "_sdk-client", "--target", address]
    cmd += ["--endpoint-name", name, "--route", route, "--threads", str(CONCURRENCY // CLIENT_PROCS)]
    cmd += ["--start-at", str(start_at), "--warmup-s", str(plan.warmup_s), "--window-s", str(plan.window_s)]
    cmd += ["--args-json", json.dumps(item), "--expected", json.dumps(expected)]
    running = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(REPO))
        for _ in range(CLIENT_PROCS)
    ]
    outputs = []
    for proc in running:
        try:
            out, err = proc.communicate(timeout=start_at - time.time() + plan.warmup_s + plan.window_s + 180)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"client exited {proc.returncode}:\n{err[-3000:]}")
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    if any(o["late"] for o in outputs):
        print(f"warning: a client process of {name} ({route}) started after its warm-up", file=sys.stderr)
    first = next((o["first_error"] for o in outputs if o["first_error"]), None)
    if first:
        print(f"{name} ({route}) first error: {first}", file=sys.stderr)
    return {
        "cpu": shares,
        "completed": sum(o["completed"] for o in outputs),
        "latencies": [x for o in outputs for x in o["latencies"]],
        "errors": sum(o["errors"] for o in outputs),
    }


class CpuShares:
    """CPU per kind of process over one load window, in % of one core, from /proc (Linux): the
    load generators, the replicas, launch-server, this driver and the rest (Ray's own processes,
    the machine). On a 2-core machine the load generators share the cores with what they load."""

    KINDS = ("clients", "replicas", "launch-server", "driver", "rest")

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.hz = os.sysconf("SC_CLK_TCK")

    def _snapshot(self) -> dict[int, tuple[float, str]]:
        seen: dict[int, tuple[float, str]] = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
                cmd = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            seen[int(name)] = ((int(fields[11]) + int(fields[12])) / self.hz, cmd)
        return seen

    def _kind(self, pid: int, cmd: str) -> str:
        if "_sdk-client" in cmd:
            return "clients"
        if "ServeReplica:" in cmd:
            return "replicas"
        if pid == self.server_pid:
            return "launch-server"
        return "driver" if pid == os.getpid() else "rest"

    def during(self, start_at: float, seconds: float) -> dict[str, float]:
        """Starts measuring [start_at, start_at + seconds) in a thread; the dict fills in then."""
        shares: dict[str, float] = {}

        def measure() -> None:
            time.sleep(max(0.0, start_at - time.time()))
            before, t0 = self._snapshot(), time.time()
            time.sleep(seconds)
            after, took = self._snapshot(), time.time() - t0
            for pid, (cpu, cmd) in after.items():
                used = cpu - before.get(pid, (0.0, cmd))[0]
                kind = self._kind(pid, cmd)
                shares[kind] = shares.get(kind, 0.0) + 100 * used / took

        threading.Thread(target=measure, daemon=True).start()
        return shares


class Plan:
    def __init__(self, quick: bool, repeats: int, job_rows: int | None) -> None:
        self.quick = quick
        self.repeats = 1 if quick else repeats
        self.warmup_s, self.window_s = (1.0, 3.0) if quick else (2.0, 8.0)
        self.latency_n, self.latency_warmup = (60, 10) if quick else (300, 30)
        self.job_rows = job_rows or (10_000 if quick else 100_000)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] if ordered else math.nan


class Sizes:
    """The batch sizes one bundle's replicas appended, read in slices between measurements."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen = 0

    def take(self) -> Counter[int]:
        try:
            lines = self.path.read_text().split()
        except OSError:
            return Counter()
        new, self.seen = lines[self.seen :], len(lines)
        return Counter(int(x) for x in new)


def describe(sizes: Counter[int]) -> str:
    if not sizes:
        return "none recorded"
    calls = sum(sizes.values())
    rows = sum(k * v for k, v in sizes.items())
    top = ", ".join(f"{k}x{v}" for k, v in sorted(sizes.items(), key=lambda kv: -kv[1])[:6])
    return f"{calls} calls, {rows} rows, mean {rows / calls:.1f}, max {max(sizes)}; most common {top}"


def wait_job(client: launch.LaunchClient, job_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = client.get_batch_async_response(job_id)
        if status["status"] in ("SUCCESS", "FAILURE", "CANCELLED"):
            return status
        time.sleep(0.5)
    return {**status, "status": f"TIMEOUT ({status.get('status')})"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repeat, short windows, 10k-row jobs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--job-rows", type=int, default=None, help="rows of each batch job (default 100,000)")
    parser.add_argument("--json", default=None, help="where to write the figures (default under /tmp)")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    plan = Plan(args.quick, args.repeats, args.job_rows)
    json_path = Path(args.json or f"/tmp/launch-batching-{time.strftime('%Y%m%d-%H%M%S')}.json")

    import numpy as np

    model = make_model()
    item = {"row": base64.b64encode(model["base"].astype("<f4").tobytes()).decode()}
    expected = answer_of(forward(model, model["base"][None, :])[0])
    driver_blas = blas_info()
    print(f"driver BLAS: {driver_blas}", flush=True)

    root = Path(tempfile.mkdtemp(prefix="batching-"))
    procs = Procs()
    serve_path: ServePath | None = None
    load_before = os.getloadavg()[0]
    figures: dict[str, Any] = {"driver_blas": driver_blas, "notes": []}
    notes: list[str] = figures["notes"]
    loads: dict[str, list[dict[str, Any]]] = {}
    c1: dict[str, list[float]] = {"batched": [], "unbatched": []}
    sizes_seen: dict[str, Counter[int]] = {}
    jobs: dict[str, dict[str, Any]] = {}
    try:
        prepare_environment(root)
        t = time.monotonic()
        gcs_address = start_ray()
        serve_path = ServePath()
        print(f"Ray + Serve + MLP app up in {time.monotonic() - t:.1f} s", flush=True)
        server = server_on_ray(procs, root, gcs_address, "bbench")
        key = server.dev_api_key()
        cpu = CpuShares(server.proc.pid)
        client = launch.LaunchClient(api_key=key, endpoint=server.address)
        loaders = {"batched": load_batched, "unbatched": load_single, "ceiling": load_ceiling}
        sizes = {kind: Sizes(root / f"sizes-{kind}.txt") for kind in loaders}
        endpoints: dict[str, launch.SyncEndpoint] = {}
        requirements = REQUIREMENTS
        for kind in loaders:
            t = time.monotonic()
            for attempt in (0, 1):
                bundle = client.create_model_bundle(
                    f"mlp-{kind}-{attempt}",
                    env_params=ENV_PARAMS,
                    load_model_fn=load_model_fn(str(sizes[kind].path)),
                    load_predict_fn=loaders[kind],
                    requirements=requirements,
                )
                endpoint = client.create_model_endpoint(f"mlp-{kind}-{attempt}", bundle, **ENDPOINT_OPTIONS)
                assert isinstance(endpoint, launch.SyncEndpoint)
                try:
                    wait_ready(endpoint, timeout=300)
                    break
                except (RuntimeError, TimeoutError) as exc:
                    if not requirements:
                        raise
                    # A fall-back, said in the report: the replicas then use .venv's numpy.
                    notes.append(f"requirements {requirements} failed ({exc}); bundles recreated without")
                    print(notes[-1], file=sys.stderr)
                    requirements = []
            endpoints[kind] = endpoint
            ready = time.monotonic() - t
            figures[f"create_to_ready_s_{kind}"] = ready
            print(f"{kind}: READY in {ready:.1f} s (requirements {requirements})", flush=True)
        # The same bundle with the endpoint's own limit: a batch waits up to WAIT_MS for company.
        waiting = client.create_model_endpoint(
            "mlp-batched-wait",
            endpoints["batched"].model_endpoint.bundle_name,
            **ENDPOINT_OPTIONS,
            max_batch_wait_ms=WAIT_MS,
        )
        assert isinstance(waiting, launch.SyncEndpoint)
        wait_ready(waiting, timeout=300)
        endpoints["batched-wait"] = waiting
        via_server = launch.LaunchClient(api_key=key, endpoint=server.address, direct_route=False)

        replica_blas = {}
        for kind, endpoint in endpoints.items():
            response = endpoint.predict(launch.EndpointRequest(args={"info": 1}, return_pickled=False), timeout=60)
            replica_blas[kind] = json.loads(response.result)
            got = json.loads(endpoint.predict(launch.EndpointRequest(args=item, return_pickled=False)).result)
            if not same(got, expected):
                raise AssertionError(f"{kind} answered {got}, the driver computed {expected}")
        replica_blas["serve"] = serve_path.call("info")
        figures["replica_blas"] = replica_blas
        for kind, info in replica_blas.items():
            print(f"{kind} replica BLAS: {info}", flush=True)
        for s in sizes.values():
            s.take()

        # 1 and 3: load at concurrency 64, paths rotating between repeats.
        paths = ["batched", "unbatched", "batched-wait", "batched-server", "ceiling", "serve"]
        for r in range(plan.repeats):
            shift = r % len(paths)
            for path in paths[shift:] + paths[:shift]:
                if path == "serve":
                    serve_path.call("reset")
                    shares = cpu.during(time.time() + plan.warmup_s, plan.window_s)
                    out = serve_path.load(item, expected, plan.warmup_s, plan.window_s)
                    out["cpu"] = shares
                    out["sizes"] = dict(serve_path.call("info")["sizes"])
                else:
                    endpoint_kind, route = ENDPOINT_OF_PATH[path]
                    bundle_kind = "batched" if endpoint_kind == "batched-wait" else endpoint_kind
                    name = endpoints[endpoint_kind].model_endpoint.name
                    sizes[bundle_kind].take()
                    out = launch_load(server.address, key, name, route, item, expected, plan, cpu)
                    out["sizes"] = dict(sizes[bundle_kind].take())
                out["rows_per_s"] = out["completed"] / plan.window_s
                out["p50_ms"] = percentile(out["latencies"], 0.50) * 1000
                out["p95_ms"] = percentile(out["latencies"], 0.95) * 1000
                out["p99_ms"] = percentile(out["latencies"], 0.99) * 1000
                del out["latencies"]
                loads.setdefault(path, []).append(out)
                print(
                    f"repeat {r + 1}/{plan.repeats} {path}: {out['rows_per_s']:,.0f} rows/s, "
                    f"p95 {out['p95_ms']:.1f} ms, errors {out['errors']}; batches "
                    f"{describe(Counter({int(k): v for k, v in out['sizes'].items()}))}",
                    flush=True,
                )

        # 2: concurrency 1, alternating (order rotating) between the two endpoints.
        request = launch.EndpointRequest(args=item, return_pickled=False)
        order = ["batched", "unbatched"]
        for s in sizes.values():
            s.take()
        for i in range(plan.latency_warmup + plan.latency_n):
            for kind in order[i % 2 :] + order[: i % 2]:
                start = time.perf_counter()
                response = endpoints[kind].predict(request, timeout=60)
                elapsed = time.perf_counter() - start
                if response.status != "SUCCESS":
                    raise AssertionError(response.traceback)
                if i >= plan.latency_warmup:
                    c1[kind].append(elapsed)
        for kind, s in sizes.items():
            sizes_seen[f"concurrency 1, {kind}"] = s.take()

        # 4: a batch job with the batch function, then without.
        for kind in ("batched", "unbatched"):
            bundle_name = endpoints[kind].model_endpoint.bundle_name
            inputs = [{"shift": i} for i in range(plan.job_rows)]
            sizes[kind].take()
            t0 = time.monotonic()
            job_id = client.batch_async_request(
                bundle_name, inputs=inputs, serialization_format="json", batch_task_options=JOB_OPTIONS
            )
            status = wait_job(client, job_id, timeout=1500 if kind == "unbatched" else 600)
            seconds = time.monotonic() - t0
            job = {"rows": plan.job_rows, "seconds": seconds, "status": status["status"], "job": status}
            job["rows_per_s"] = plan.job_rows / seconds
            if status["status"] == "SUCCESS":
                results = client.load_batch_results(job_id)
                probes = (0, 1, 777 % plan.job_rows)
                want = [answer_of(forward(model, np.roll(model["base"], k)[None, :])[0]) for k in probes]
                picked = [results[k].get("result") for k in probes]
                job["checked"] = len(results) == plan.job_rows and all(
                    g is not None and same(g, w) for g, w in zip(picked, want, strict=True)
                )
            job["sizes"] = dict(sizes[kind].take())
            jobs[kind] = job
            print(
                f"batch job {kind}: {status['status']} in {seconds:.1f} s, {job['rows_per_s']:,.0f} rows/s, "
                f"checked {job.get('checked')}; batches {describe(Counter(job['sizes']))}",
                flush=True,
            )
        client.connection.close()
        via_server.connection.close()
    except Exception:
        print(f"--- launch-server log ---\n{log_tail(root / 'launch-server.log', 60)}", file=sys.stderr)
        raise
    finally:
        procs.stop_all()
        if serve_path is not None:
            serve_path.stop_ray()
        if args.keep_logs:
            print(f"logs kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
        figures.update(
            load=loads, concurrency1_s=c1, batch_jobs=jobs, sizes={k: dict(v) for k, v in sizes_seen.items()}
        )
        figures["load_average"] = [load_before, os.getloadavg()[0]]
        json_path.write_text(json.dumps(figures, indent=1, default=str))

    report(plan, loads, c1, jobs, sizes_seen, load_before)
    print(f"\nfigures written to {json_path}")


def report(
    plan: Plan,
    loads: dict[str, list[dict[str, Any]]],
    c1: dict[str, list[float]],
    jobs: dict[str, dict[str, Any]],
    sizes_seen: dict[str, Counter[int]],
    load_before: float,
) -> None:
    def med(path: str, metric: str) -> float:
        return statistics.median(run[metric] for run in loads[path])

    print()
    print(
        f"Dynamic batching, numpy MLP {WIDTH}x{LAYERS} layers, 1-row requests; {platform.node()}, {os.cpu_count()} "
        f"CPUs, Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M %Z')}; "
        f"{'quick' if plan.quick else 'full'}: medians of {plan.repeats} repeat(s) of {plan.window_s:g} s counted "
        f"after {plan.warmup_s:g} s at concurrency {CONCURRENCY}; 1-min load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after"
    )
    print()
    labels = {
        "batched": f"Launch batched (max_batch_size={MAX_BATCH}), direct route",
        "unbatched": "Launch unbatched, direct route",
        "batched-wait": f"Launch batched, endpoint max_batch_wait_ms={WAIT_MS}, direct route",
        "batched-server": "Launch batched, through the server",
        "ceiling": "Launch, a batch function that does no work (the request path alone)",
        "serve": f"Ray Serve @serve.batch(max_batch_size={MAX_BATCH}), handle, asyncio driver",
    }
    print(
        f"Concurrency {CONCURRENCY} ({CLIENT_PROCS} client procs x {CONCURRENCY // CLIENT_PROCS} threads for Launch):"
    )
    print()
    print(
        "| path | rows/s | × unbatched | × Serve | p50 ms | p95 ms | p99 ms | mean batch | runs (rows/s) "
        "| CPU, % of a core: clients / replicas / launch-server / driver / rest |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    base, serve = med("unbatched", "rows_per_s"), med("serve", "rows_per_s")
    for path, label in labels.items():
        if path not in loads:
            continue
        rate = med(path, "rows_per_s")
        total: Counter[int] = Counter()
        for run in loads[path]:
            total.update({int(k): v for k, v in run["sizes"].items()})
        calls = sum(total.values())
        mean = sum(k * v for k, v in total.items()) / calls if calls else math.nan
        runs = ", ".join(f"{run['rows_per_s']:,.0f}" for run in loads[path])
        cpu = " / ".join(
            f"{statistics.median(run['cpu'].get(kind, 0.0) for run in loads[path]):.0f}" for kind in CpuShares.KINDS
        )
        print(
            f"| {label} | {rate:,.0f} | {rate / base:.2f} | {rate / serve:.2f} | {med(path, 'p50_ms'):.1f} | "
            f"{med(path, 'p95_ms'):.1f} | {med(path, 'p99_ms'):.1f} | {mean:.1f} | {runs} | {cpu} |"
        )
    print()
    p95b, p95u = med("batched", "p95_ms"), med("unbatched", "p95_ms")
    print(f"p95 at concurrency {CONCURRENCY}: batched {p95b:.1f} ms, unbatched {p95u:.1f} ms, ratio {p95b / p95u:.2f}")
    print()
    print(f"Concurrency 1, alternating request by request ({plan.latency_n} each after {plan.latency_warmup} warm-up):")
    print()
    print("| endpoint | p50 ms | p95 ms | p99 ms | p50 / unbatched p50 |")
    print("|---|---:|---:|---:|---:|")
    u50 = statistics.median(c1["unbatched"])
    for kind in ("batched", "unbatched"):
        v = c1[kind]
        p50 = statistics.median(v)
        print(
            f"| {kind} | {p50 * 1e3:.2f} | {percentile(v, 0.95) * 1e3:.2f} | {percentile(v, 0.99) * 1e3:.2f} | "
            f"{p50 / u50:.3f} |"
        )
    print()
    print(f"Batch job ({JOB_OPTIONS}), submit -> SUCCESS:")
    print()
    print("| job | rows | status | seconds | rows/s | × unbatched | batches |")
    print("|---|---:|---|---:|---:|---:|---|")
    for kind, job in jobs.items():
        rel = job["rows_per_s"] / jobs["unbatched"]["rows_per_s"] if "unbatched" in jobs else math.nan
        print(
            f"| {kind} | {job['rows']:,} | {job['status']} | {job['seconds']:.1f} | {job['rows_per_s']:,.0f} | "
            f"{rel:.2f} | {describe(Counter(job['sizes']))} |"
        )
    if sizes_seen:
        print()
        for name, counter in sizes_seen.items():
            print(f"- batches at {name}: {describe(counter)}")


def clean_blas_env() -> None:
    """Re-executes this process without the slowing OpenBLAS variables (see the docstring)."""
    if any(name in os.environ for name in BLAS_ENV):
        env = {k: v for k, v in os.environ.items() if k not in BLAS_ENV}
        os.execve(sys.executable, [sys.executable, "-m", "benchmarks.batching", *sys.argv[1:]], env)


if __name__ == "__main__":
    clean_blas_env()
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        client_main(sys.argv[1:])
    else:
        main()
