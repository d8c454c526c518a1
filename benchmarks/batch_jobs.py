"""Batch jobs, side by side: a Launch batch job against the same work written as a Ray Data pipeline.

Why: a batch job is how a Launch user runs a bundle over many inputs (Scale Launch's
`batch_async_request`). A Ray user would write the same job in Ray Data. This puts both on one table,
measured in one run on one machine with the same trivial per-input function and the same number of
workers, so the cost of Launch's durable path (chunks as queued tasks in a database, per-chunk result
objects, a final assemble step, a fresh endpoint per job) can be read off as a ratio
(goal: Launch >= 0.8x Ray Data inputs/s).

How it is driven:
  - Launch: one `launch-server serve` subprocess (fresh data dir, SQLite, its own local Ray under this
    run's RAY_TMPDIR, every address 127.0.0.1). One cloudpickled bundle whose predict function is
    `double(x) -> x * 2`, defined inside a function so cloudpickle takes it by value. Each measurement
    is ONE `batch_async_request` of N inputs `{"x": i}` (serialization "json", cpus=1, memory=512Mi,
    max_workers=2, pyspark_max_executors=2, pyspark_partition_size=P; P=100 is the server's default),
    then `get_batch_async_response` every 0.2 s until a terminal status. inputs/s = N / (submit ->
    status SUCCESS), so worker start-up (the job's own temporary endpoint) is inside it, as it is for
    the Ray Data actors below. Also reported: time to first progress (first poll with a counted
    input), the processing span (first to last chunk result object written, read from the chunk
    files' mtimes in the server's local storage; inputs/s over it counts the N - P inputs finished
    inside it), and the time with `load_batch_results` added. Every result is checked (N values, in
    input order, each 2 * x). Between jobs the run waits until the previous job's replicas have
    exited, so a job never shares the cores with the last one's teardown.
  - Ray Data: after the Launch server has stopped (and its Ray with it), a separate process with its
    own local Ray (`ray.init(num_cpus=4, include_dashboard=False)`, its own RAY_TMPDIR) runs
    `ray.data.from_items([{"x": i}, ...]).map_batches(Cls, compute=ActorPoolStrategy(size=2),
    num_cpus=1, batch_size=P).take_all()`, timed from building the pipeline to all rows in the driver.
    Two long-lived actors match Launch's two replicas. The fair row calls the same `double` once per
    input inside the batch function; the extra, labelled row is the vectorized form a Ray Data user would write
    (`batch["x"] * 2`). Ray Data does not keep input order by default, so results are checked by x.
  - Each side first runs one untimed warm-up of 200 inputs: launch-server answers SERVING before its
    Ray and Serve have started (they start in the background), and the first Ray Data pipeline in a
    process pays one-off costs; neither belongs in a steady-state rate. Worker start-up for each
    measured job (Launch's replicas, Ray Data's actors) stays inside the timings.
  - Load average (1 min) is printed before and after every measurement: the machine is shared.

Run from the repository root:
    .venv/bin/python -m benchmarks.batch_jobs [--quick] [--repeats 3] [--keep-logs]
Ray Data's own dependencies (pandas, pyarrow) are installed by the first run into
benchmarks/.raydata-libs and put on the Ray Data process's PYTHONPATH only: in .venv they would
be imported by every Serve replica (ray.serve imports pandas when it is installed), slowing every
replica's start and so the Launch side's timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import launch

from benchmarks.sync_predict import ENV_PARAMS, REPO, Procs, prepare_environment, start_own_ray_server, tail
from tests.constants import OWN_RAY_STOP_S
from tests.server_process import pids_with_env, stop_process

BUNDLE = "echo2"
WORKERS = 2
EXECUTORS = 2  # pyspark_max_executors: chunks in flight per worker (the server's default)
DEFAULT_PARTITION = 100  # BatchOptions.pyspark_partition_size default (launch_server/domain/batch_jobs.py)
POLL_S = 0.2
JOB_TIMEOUT_S = 600.0
TEARDOWN_WAIT_S = 90.0
WARMUP_N = 200  # inputs of the untimed warm-up run on each side
RESULT_PREFIX = "RESULT "
MARKER = "BBENCH_RUN"  # environment variable carried by every process this run starts (and their children)


def make_double() -> Callable[..., Any]:
    """The per-input function, built inside a function so cloudpickle pickles it by value (the
    replicas cannot import this module) and both systems run exactly the same code object."""

    def double(x: int) -> int:
        return x * 2

    return double


@dataclass
class Plan:
    """Sizes of one run; every loop below is bounded by these and by explicit deadlines."""

    n: int = 10_000
    repeats: int = 3
    sizes: tuple[int, ...] = (100, 500)

    @classmethod
    def quick(cls) -> Plan:
        """Smoke-run sizes: shows every phase works end to end, not how fast it is."""
        return cls(n=1_000, repeats=1)


def load_avg() -> str:
    """The 1-minute load average, printed around each measurement: others use this machine too."""
    return f"{os.getloadavg()[0]:.2f}"


# ---- processes this run started ------------------------------------------------------------------


def marked_pids(marker: str) -> list[int]:
    """This run's server or Ray Data driver and every Ray process they started."""
    return pids_with_env(MARKER, marker)


def reap(marker: str, wait_s: float = 30.0) -> list[str]:
    """Gives this run's processes with `marker` `wait_s` to exit on their own, then SIGKILLs the rest
    by pid and returns their names. Why: a Ray that outlives its owner would share the cores with the
    next measurement, and which processes outlived it is worth reporting."""
    deadline = time.monotonic() + wait_s
    while (pids := marked_pids(marker)) and time.monotonic() < deadline:
        time.sleep(0.5)
    names = []
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            names.append(" ".join(part.decode(errors="replace") for part in cmdline[:3] if part)[:100])
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return names


def replica_pids(marker: str) -> list[int]:
    """This run's Serve replica processes (their title starts with ray::ServeReplica)."""
    pids = []
    for pid in marked_pids(marker):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::ServeReplica"):
                pids.append(pid)
        except OSError:
            continue
    return pids


# ---- Launch ----------------------------------------------------------------------------------------


@dataclass
class Server:
    """The launch-server subprocess (with its own local Ray) and an SDK client for it."""

    proc: subprocess.Popen
    client: launch.LaunchClient
    data_dir: Path
    log_path: Path
    marker: str


def start_server(procs: Procs, root: Path, marker: str) -> Server:
    """Starts `launch-server serve` on a free loopback port; returns once Health is SERVING and the
    dev API key is written. It inherits prepare_environment's RAY_TMPDIR and loopback settings."""
    data_dir = root / "launch-data"
    log_path = root / "launch-server.log"
    env = {"LAUNCH_SERVE_APP_PREFIX": f"bbench{uuid.uuid4().hex[:6]}", MARKER: marker}
    process = start_own_ray_server(procs, data_dir, env, log_path)
    proc = process.proc
    client = launch.LaunchClient(api_key=process.dev_api_key(), endpoint=process.address)
    return Server(proc=proc, client=client, data_dir=data_dir, log_path=log_path, marker=marker)


def stop_server(server: Server) -> float:
    """SIGTERM and wait for exit (the server shuts its Ray down); returns the seconds it took."""
    start = time.monotonic()
    server.client.connection.close()
    stop_process(server.proc, timeout=OWN_RAY_STOP_S)
    return time.monotonic() - start


def wait_no_replicas(marker: str, timeout: float = TEARDOWN_WAIT_S) -> float | None:
    """Seconds until the last job's replicas have exited, or None after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if not replica_pids(marker):
            return time.monotonic() - start
        time.sleep(0.5)
    return None


def chunk_span(data_dir: Path, job_id: str) -> tuple[float, float, int] | None:
    """(first, last) wall-clock mtime of the job's chunk result objects and their count: when the
    replicas finished their first and last chunk, independent of the 0.5 s batch-runner pass and the
    0.2 s poll."""
    mtimes = [p.stat().st_mtime for p in data_dir.rglob("chunk-*") if p.parent.name == job_id]
    return (min(mtimes), max(mtimes), len(mtimes)) if mtimes else None


def launch_job(server: Server, n: int, size: int) -> dict[str, Any]:
    """One batch job of n inputs with partition size `size`, polled to a terminal status, then its
    results loaded and checked. Raises on a wrong or missing result."""
    client = server.client
    inputs = [{"x": i} for i in range(n)]
    options = {
        "cpus": 1,
        "memory": "512Mi",
        "max_workers": WORKERS,
        "pyspark_partition_size": size,
        "pyspark_max_executors": EXECUTORS,
    }
    wall0, t0 = time.time(), time.monotonic()
    job_id = client.batch_async_request(BUNDLE, inputs=inputs, serialization_format="json", batch_task_options=options)
    submitted = time.monotonic() - t0
    first_running = first_progress = None
    deadline = t0 + JOB_TIMEOUT_S
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = client.get_batch_async_response(job_id)
        now = time.monotonic() - t0
        if first_running is None and status["status"] != "PENDING":
            first_running = now
        if first_progress is None and status["num_succeeded"] + status["num_failed"] > 0:
            first_progress = now
        if status["status"] in ("SUCCESS", "FAILURE", "CANCELLED"):
            break
        time.sleep(POLL_S)
    done = time.monotonic() - t0
    if status.get("status") != "SUCCESS":
        raise RuntimeError(f"batch job {job_id} ended {status.get('status')} after {done:.1f} s: {status}")
    results = client.load_batch_results(job_id)
    with_results = time.monotonic() - t0
    wrong = [i for i, entry in enumerate(results) if entry != {"result": 2 * i}]
    if len(results) != n or wrong:
        raise AssertionError(f"job {job_id}: {len(results)} results, {len(wrong)} wrong (first {wrong[:3]})")
    span = chunk_span(server.data_dir, job_id)
    run = {
        "seconds": done,
        "rate": n / done,
        "submit_s": submitted,
        "first_running_s": first_running,
        "first_progress_s": first_progress,
        "with_results_s": with_results,
        "rate_with_results": n / with_results,
        "first_chunk_s": None,
        "span_s": None,
        "span_rate": None,
    }
    if span is not None:
        first, last, count = span
        run["first_chunk_s"] = first - wall0
        run["span_s"] = last - first
        # The span starts when the first chunk is done, so it holds the other n - size inputs.
        if count >= 3 and last - first > 0.05:
            run["span_rate"] = (n - size) / (last - first)
    return run


def launch_phase(plan: Plan, root: Path, marker: str) -> tuple[dict[int, list[dict[str, Any]]], list[str]]:
    """Starts the server, runs every Launch measurement, stops the server and its Ray."""
    procs = Procs()
    runs: dict[int, list[dict[str, Any]]] = {size: [] for size in plan.sizes}
    notes: list[str] = []
    server: Server | None = None
    try:
        t = time.monotonic()
        server = start_server(procs, root, marker)
        print(f"launch-server SERVING in {time.monotonic() - t:.1f} s", flush=True)
        server.client.create_model_bundle(
            BUNDLE, env_params=ENV_PARAMS, predict_fn_or_cls=make_double(), requirements=[]
        )
        # The server answers SERVING before its Ray and Serve are up (they start in the background):
        # an untimed warm-up job waits for them, so no measured job pays for Ray's start.
        t = time.monotonic()
        launch_job(server, WARMUP_N, DEFAULT_PARTITION)
        print(
            f"warm-up job ({WARMUP_N} inputs, Ray start-up included) done in {time.monotonic() - t:.1f} s", flush=True
        )
        notes.append(f"untimed warm-up job ({WARMUP_N} inputs) right after SERVING: {time.monotonic() - t:.1f} s")
        wait_no_replicas(marker)
        for r in range(plan.repeats):
            for size in plan.sizes:
                before = load_avg()
                run = launch_job(server, plan.n, size)
                run["load"] = (before, load_avg())
                runs[size].append(run)
                print(
                    f"Launch P={size} repeat {r + 1}/{plan.repeats}: {run['seconds']:.2f} s, "
                    f"{run['rate']:,.0f} inputs/s (first progress {fmt(run['first_progress_s'], 2)} s, "
                    f"span {fmt(run['span_s'], 2)} s, {fmt(run['span_rate'], 0)} inputs/s; "
                    f"with results {run['with_results_s']:.2f} s); load {before} -> {run['load'][1]}",
                    flush=True,
                )
                waited = wait_no_replicas(marker)
                if waited is None:
                    notes.append(f"replicas of a finished job still running after {TEARDOWN_WAIT_S:.0f} s")
                else:
                    print(f"  previous job's replicas gone after {waited:.1f} s", flush=True)
    finally:
        if server is not None:
            stopped = stop_server(server)
            print(f"launch-server stopped in {stopped:.1f} s", flush=True)
            notes += log_notes(server.log_path)
        procs.stop_all()
        left = reap(marker)
        if left:
            notes.append(f"SIGKILLed {len(left)} of the server's Ray processes left 30 s after it exited: {left}")
    return runs, notes


def log_notes(log_path: Path, limit: int = 6) -> list[str]:
    """WARNING/ERROR lines and tracebacks the server logged: problems a benchmark should surface."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    flagged = [ln for ln in lines if " WARNING " in ln or " ERROR " in ln or ln.startswith("Traceback")]
    counts = Counter(ln.split(": ", 1)[-1][:160] for ln in flagged)
    return [f"server log: {n}x {text}" for text, n in counts.most_common(limit)]


# ---- Ray Data ----------------------------------------------------------------------------------------


@dataclass
class RayDataVariant:
    """One Ray Data row: the batch function's style and the batch size."""

    style: str  # "per-row": double() once per input; "vectorized": batch["x"] * 2
    batch_size: int
    runs: list[dict[str, Any]] = field(default_factory=list)


def raydata_main(args: argparse.Namespace) -> None:
    """Entry point of the Ray Data subprocess: its own local Ray, every variant `repeats` times; one
    RESULT line of JSON per measurement on stdout."""
    import numpy as np
    import ray

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        double = make_double()

        class PerRow:
            """The fair equivalent of a Launch chunk: the same Python call once per input."""

            def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
                return {"x": batch["x"], "y": np.asarray([double(x=int(v)) for v in batch["x"]], dtype=np.int64)}

        class Vectorized:
            """What a Ray Data user would write for this function: one numpy operation per batch."""

            def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
                return {"x": batch["x"], "y": batch["x"] * 2}

        # Untimed warm-up, as on the Launch side: the first pipeline in a process pays one-off costs.
        ray.data.from_items([{"x": i} for i in range(WARMUP_N)]).map_batches(
            PerRow, compute=ray.data.ActorPoolStrategy(size=WORKERS), num_cpus=1, batch_size=DEFAULT_PARTITION
        ).take_all()
        sizes = [int(s) for s in args.sizes.split(",")]
        for r in range(args.repeats):
            for style, cls in (("per-row", PerRow), ("vectorized", Vectorized)):
                for size in sizes:
                    before = load_avg()
                    t0 = time.monotonic()
                    ds = ray.data.from_items([{"x": i} for i in range(args.n)]).map_batches(
                        cls, compute=ray.data.ActorPoolStrategy(size=WORKERS), num_cpus=1, batch_size=size
                    )
                    rows = ds.take_all()
                    seconds = time.monotonic() - t0
                    got = {int(row["x"]): int(row["y"]) for row in rows}
                    if len(rows) != args.n or got != {i: 2 * i for i in range(args.n)}:
                        raise AssertionError(f"Ray Data {style} bs={size}: {len(rows)} rows, wrong values")
                    out = {"style": style, "batch_size": size, "repeat": r, "seconds": seconds}
                    out.update(rate=args.n / seconds, load=(before, load_avg()))
                    print(RESULT_PREFIX + json.dumps(out), flush=True)
    finally:
        ray.shutdown()


RAYDATA_LIBS = REPO / "benchmarks" / ".raydata-libs"


def ensure_raydata_libs() -> Path:
    """Installs Ray Data's extra dependencies into benchmarks/.raydata-libs (kept out of .venv and,
    through a `.gitignore` of `*` inside, out of git); see the module docstring for why."""
    probe = [sys.executable, "-c", "import pandas, pyarrow"]
    env = {**os.environ, "PYTHONPATH": str(RAYDATA_LIBS)}
    if RAYDATA_LIBS.exists() and subprocess.run(probe, env=env, capture_output=True).returncode == 0:
        return RAYDATA_LIBS
    print(f"installing Ray Data's dependencies into {RAYDATA_LIBS} (about a minute)", flush=True)
    RAYDATA_LIBS.mkdir(exist_ok=True)
    (RAYDATA_LIBS / ".gitignore").write_text("*\n")
    pip = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--target",
        str(RAYDATA_LIBS),
        "pandas>=1.3",
        "pyarrow>=9",
        "python-dateutil<3",
    ]
    subprocess.run(pip, check=True, timeout=900)
    return RAYDATA_LIBS


def raydata_phase(plan: Plan, root: Path, marker: str) -> tuple[list[RayDataVariant], list[str]]:
    """Runs raydata_main in its own process (own RAY_TMPDIR) and collects its measurements."""
    ray_tmp = root / "rd"
    ray_tmp.mkdir()
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), MARKER: marker, "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_SERVE_THROUGHPUT_OPTIMIZED", None)  # a Serve setting; Ray Data runs with Ray's defaults
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ensure_raydata_libs()), env.get("PYTHONPATH", "")) if p)
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-m", "benchmarks.batch_jobs", "_raydata", "--n", str(plan.n)]
    cmd += ["--repeats", str(plan.repeats), "--sizes", ",".join(map(str, plan.sizes))]
    log_path = root / "raydata.log"
    variants = {
        (style, size): RayDataVariant(style, size) for style in ("per-row", "vectorized") for size in plan.sizes
    }
    notes: list[str] = []
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=str(REPO))
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if not line.startswith(RESULT_PREFIX):
                    continue
                out = json.loads(line[len(RESULT_PREFIX) :])
                variants[(out["style"], out["batch_size"])].runs.append(out)
                print(
                    f"Ray Data {out['style']} bs={out['batch_size']} repeat {out['repeat'] + 1}/{plan.repeats}: "
                    f"{out['seconds']:.2f} s, {out['rate']:,.0f} inputs/s; load {out['load'][0]} -> {out['load'][1]}",
                    flush=True,
                )
            proc.wait(timeout=300)
        finally:
            stop_process(proc, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"Ray Data process exited {proc.returncode}:\n{tail(log_path)}")
    left = reap(marker)
    if left:
        notes.append(f"SIGKILLed {len(left)} Ray Data processes left 30 s after its driver exited: {left}")
    return list(variants.values()), notes


# ---- report --------------------------------------------------------------------------------------


def fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def med(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


def table(launch_runs: dict[int, list[dict[str, Any]]], variants: list[RayDataVariant]) -> str:
    """Markdown table of medians; each Launch row's ratio is against the per-row Ray Data row of the
    same batch size (the same Python call per input, the same grain of work)."""
    per_row = {v.batch_size: med(v.runs, "rate") for v in variants if v.style == "per-row"}
    lines = [
        "| path | partition / batch size | inputs/s | s | time to first progress s | processing span s "
        "(inputs/s) | inputs/s incl. load_batch_results | Launch / Ray Data (per-row, same size) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, runs in launch_runs.items():
        default = " (default)" if size == DEFAULT_PARTITION else ""
        rate = med(runs, "rate")
        ratio = "n/a" if rate is None or not per_row.get(size) else f"{rate / per_row[size]:.2f}"
        lines.append(
            f"| Launch batch job, {WORKERS} workers x {EXECUTORS} executors | {size}{default} | {fmt(rate, 0)} | "
            f"{fmt(med(runs, 'seconds'), 2)} | {fmt(med(runs, 'first_progress_s'), 2)} | "
            f"{fmt(med(runs, 'span_s'), 2)} ({fmt(med(runs, 'span_rate'), 0)}) | "
            f"{fmt(med(runs, 'rate_with_results'), 0)} | {ratio} |"
        )
    for v in variants:
        label = (
            f"Ray Data map_batches, {WORKERS} actors, double() per row"
            if v.style == "per-row"
            else f"Ray Data map_batches, {WORKERS} actors, vectorized `x * 2` (extra, not like for like)"
        )
        lines.append(
            f"| {label} | {v.batch_size} | {fmt(med(v.runs, 'rate'), 0)} | {fmt(med(v.runs, 'seconds'), 2)} | | | | |"
        )
    return "\n".join(lines)


def per_repeat(launch_runs: dict[int, list[dict[str, Any]]], variants: list[RayDataVariant]) -> str:
    """Per-repeat seconds and load averages, so the spread behind each median is visible."""
    lines = []
    for size, runs in launch_runs.items():
        values = "; ".join(f"{r['seconds']:.2f} s (load {r['load'][0]}->{r['load'][1]})" for r in runs)
        lines.append(f"- Launch P={size}: {values}")
    for v in variants:
        values = "; ".join(f"{r['seconds']:.2f} s (load {r['load'][0]}->{r['load'][1]})" for r in v.runs)
        lines.append(f"- Ray Data {v.style} bs={v.batch_size}: {values}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 inputs, 1 repeat")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per row; medians are reported")
    parser.add_argument("--keep-logs", action="store_true", help="keep the run's temp dir (server and Ray logs)")
    args = parser.parse_args()
    plan = Plan.quick() if args.quick else Plan(repeats=args.repeats)

    run_id = uuid.uuid4().hex[:8]
    # A short root: Ray's socket paths live under RAY_TMPDIR and must stay under the OS limit.
    root = Path(tempfile.mkdtemp(prefix="bbench-", dir="/tmp"))
    load_start = load_avg()
    notes: list[str] = []
    launch_runs: dict[int, list[dict[str, Any]]] = {}
    variants: list[RayDataVariant] = []
    try:
        prepare_environment(root)
        launch_runs, launch_notes = launch_phase(plan, root, f"{run_id}-launch")
        notes += launch_notes
        variants, rd_notes = raydata_phase(plan, root, f"{run_id}-raydata")
        notes += rd_notes
    finally:
        if args.keep_logs:
            print(f"logs kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)

    print()
    print(
        f"Batch jobs, trivial double(x); {platform.node()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M %Z')}; {'quick' if args.quick else 'full'}: "
        f"{plan.n:,} inputs, medians of {plan.repeats} repeat(s); 1-min load average {load_start} at start, "
        f"{load_avg()} at end (others' work on the machine shows here)"
    )
    print()
    print(table(launch_runs, variants))
    print()
    print("Per repeat (seconds, load average before->after):")
    print(per_repeat(launch_runs, variants))
    if notes:
        print("\nNotes:")
        for note in notes:
            print(f"- {note}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_raydata":
        sub = argparse.ArgumentParser()
        sub.add_argument("command")
        sub.add_argument("--n", type=int, required=True)
        sub.add_argument("--repeats", type=int, required=True)
        sub.add_argument("--sizes", required=True)
        raydata_main(sub.parse_args())
    else:
        main()
