"""Async tasks, end to end: latency next to sync predict, sustained queue throughput, drain from zero.

Why: async endpoints promise (a) results pushed to the client fast enough that async is not a
latency penalty over sync (goal: async p50 <= 2x sync p50, and far better than the 2-second polling
Scale Launch clients are used to), (b) a durable queue that sustains >= 300 tasks/s with nothing
lost, on SQLite and on PostgreSQL, helped by grouping tasks into one Serve call, and (c) a queue
that starts draining soon after it fills on an endpoint scaled to zero. This measures all three in
one run, through the SDK only, against real `launch-server` processes.

How it is driven:
  - Each server is a `launch-server serve` subprocess with a fresh data directory that starts its
    own local Ray (the server's default mode) and stops it on SIGTERM; only one runs at a time, so
    the three configurations never share the machine's 2 cores with each other. All Ray state lives
    under this run's own RAY_TMPDIR (/tmp/abench-*), every address is 127.0.0.1.
  - Server 1 (SQLite, default grouping): a sync and an async endpoint of the same echo bundle
    (cpus=1, memory=256Mi, min_workers=1, max_workers=2, per_worker=2). Concurrency-1 latency,
    alternating one sync `predict` (direct route), one sync `predict` through the server
    (`direct_route=False`), one async `predict(...).get()` (one CreateAndWatchTask call) and the
    same async request on two calls (CreateTask, then WatchTasks) per step, so drift on a busy
    machine hits all alike. Then 2-second polling (submit with `async_request`, poll
    `get_async_response` every 2 s, simulated over a few requests; also computed from the async
    samples as "rounded up to the next 2 s poll"). Then the sync endpoint is deleted and the
    throughput run goes; then the drain-from-zero run on a min_workers=0 endpoint.
  - Server 2: SQLite with LAUNCH_TASK_GROUP_MAX=1 (no grouping), throughput run only.
  - Server 3: PostgreSQL (a throwaway database from tests.support), throughput run only.
  - Throughput run: N tasks `{"x": i}` in one `predict_batch` (one BatchCreateTasks call), then ONE
    WatchTasks stream over all N ids (`EndpointCalls.watch`): completion is pushed by the server, so
    the time of the last terminal message is the server's real drain time, without a polling
    interval in it. A second watch afterwards reads every task's stored state and result back from
    the database and checks each result equals its input (zero lost = N SUCCESS, 0 wrong).

Run from the repository root (needs the local PostgreSQL the tests use; --skip-pg without it):
    .venv/bin/python -m benchmarks.async_tasks [--quick] [--skip-pg] [--keep-logs]
"""

from __future__ import annotations

import argparse
import json
import math
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
from launch.model_endpoint import TERMINAL_STATES, state_name

from benchmarks.grpc_echo_server import percentile
from benchmarks.sync_predict import (
    ENV_PARAMS,
    Procs,
    echo,
    prepare_environment,
    start_own_ray_server,
    tail,
    wait_ready,
    wait_workers,
)
from tests.constants import OWN_RAY_STOP_S
from tests.server_process import pids_with_env, stop_process
from tests.support import create_pg_database, drop_pg_database

WORKERS = {"min_workers": 1, "max_workers": 2, "per_worker": 2}
RESOURCES = {"cpus": 1, "memory": "256Mi"}
MAX_WATCH = 10_000  # the server's cap on ids per WatchTasks (launch_server/domain/tasks.py MAX_WATCH)


@dataclass
class Plan:
    """Sizes of one run; every loop below is bounded by these counts and by explicit deadlines."""

    warmup: int = 20
    latency_n: int = 200
    poll_n: int = 10
    poll_interval_s: float = 2.0
    tasks: int = 10_000
    warm_tasks: int = 200
    cold_tasks: int = 1_000

    @classmethod
    def quick(cls) -> Plan:
        """Smoke-run sizes: shows every phase works end to end, not how fast it is."""
        return cls(warmup=5, latency_n=30, poll_n=3, tasks=300, warm_tasks=30, cold_tasks=100)


# ---- servers -------------------------------------------------------------------------------------


@dataclass
class Server:
    """One launch-server subprocess (with its own local Ray) and an SDK client for it."""

    label: str
    proc: subprocess.Popen
    address: str
    client: launch.LaunchClient
    log_path: Path
    app_prefix: str
    api_key: str = ""


def start_server(procs: Procs, root: Path, label: str, extra_env: dict[str, str]) -> Server:
    """Starts `launch-server serve` on a free loopback port and waits for SERVING and the dev key.

    Its data dir and log are fresh per server; it inherits this run's RAY_TMPDIR and loopback
    settings (prepare_environment), so the Ray it starts stays on 127.0.0.1 in our own temp dir."""
    log_path = root / f"server-{label}.log"
    app_prefix = f"abench{uuid.uuid4().hex[:6]}"
    env = {"LAUNCH_SERVE_APP_PREFIX": app_prefix, **extra_env}
    process = start_own_ray_server(procs, root / f"data-{label}", env, log_path)
    proc, address, api_key = process.proc, process.address, process.dev_api_key()
    client = launch.LaunchClient(api_key=api_key, endpoint=address)
    return Server(
        label=label,
        proc=proc,
        address=address,
        client=client,
        log_path=log_path,
        app_prefix=app_prefix,
        api_key=api_key,
    )


def stop_server(server: Server) -> float:
    """SIGTERM and wait for exit (the server stops its own Ray); returns the seconds it took."""
    start = time.monotonic()
    server.client.connection.close()
    stop_process(server.proc, timeout=OWN_RAY_STOP_S)
    return time.monotonic() - start


def leftover_pids(app_prefix: str) -> list[int]:
    """Ray processes the server started (they inherit its unique prefix) that outlived it."""
    return pids_with_env("LAUNCH_SERVE_APP_PREFIX", app_prefix)


def reap_leftovers(server: Server, wait_s: float = 20.0) -> int:
    """Gives the server's Ray processes `wait_s` to exit on their own, then SIGKILLs the rest by pid.

    Why: a server that dies during its own shutdown leaves Ray agents behind, and
    the next configuration must not share the cores with them. Only processes with this server's
    unique prefix are touched: processes this run started, never anyone else's."""
    deadline = time.monotonic() + wait_s
    while (pids := leftover_pids(server.app_prefix)) and time.monotonic() < deadline:
        time.sleep(1.0)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return len(pids)


def log_notes(server: Server, limit: int = 6) -> list[str]:
    """WARNING/ERROR lines and tracebacks the server logged: problems a benchmark should surface."""
    try:
        lines = server.log_path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    flagged = [ln for ln in lines if " WARNING " in ln or " ERROR " in ln or ln.startswith("Traceback")]
    counts = Counter(ln.split(": ", 1)[-1][:160] for ln in flagged)
    return [f"{server.label}: {n}x {text}" for text, n in counts.most_common(limit)]


# ---- endpoints -----------------------------------------------------------------------------------


def make_endpoint(
    client: launch.LaunchClient, name: str, bundle: launch.ModelBundle, endpoint_type: str, **workers: int
) -> tuple[Any, float]:
    """Creates an endpoint with the run's resources and waits for READY; returns it and create->READY s."""
    start = time.monotonic()
    endpoint = client.create_model_endpoint(
        name, bundle, endpoint_type=endpoint_type, **RESOURCES, **(workers or WORKERS)
    )
    wait_ready(endpoint, timeout=240)
    return endpoint, time.monotonic() - start


def delete_endpoint(client: launch.LaunchClient, name: str, timeout: float = 90.0) -> None:
    """Deletes an endpoint and waits until it is gone, so its replica does not share the cores
    with the next measurement."""
    client.delete_model_endpoint(name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and client.get_model_endpoint(name) is not None:
        time.sleep(0.5)


def echo_bundle(client: launch.LaunchClient) -> launch.ModelBundle:
    """The trivial echo bundle (sync_predict.echo, pickled by value): result JSON == args."""
    return client.create_model_bundle("echo", env_params=ENV_PARAMS, predict_fn_or_cls=echo, requirements=[])


def expect_echo(response: launch.EndpointResponse, args: dict[str, Any]) -> None:
    if response.status != "SUCCESS" or response.result is None or json.loads(response.result) != args:
        raise AssertionError(f"unexpected response {response!r} for {args}")


# ---- phase 1: latency --------------------------------------------------------------------------


def latency_pair(
    sync_ep: Any, server_sync_ep: Any, async_ep: Any, plan: Plan
) -> tuple[list[float], list[float], list[float], list[float]]:
    """Concurrency 1, alternating a sync predict on the direct route (the SDK's default), a sync
    predict through the server (direct_route=False), an async predict().get() (one
    CreateAndWatchTask call) and the same async request on two calls (CreateTask, then WatchTasks:
    what the SDK did before, and still does against an older server); seconds each."""
    client = async_ep.client
    name = async_ep.model_endpoint.name

    def two_calls(request: launch.EndpointRequest) -> launch.EndpointResponse:
        task_id = client.endpoint_calls.create_task(name, request)
        return launch.EndpointResponseFuture(client, name, task_id).get(timeout=60)

    samples: list[list[float]] = [[], [], [], []]
    for i in range(plan.warmup + plan.latency_n):
        args = {"x": i}
        request = launch.EndpointRequest(args=args, return_pickled=False)
        timings = []
        for call in (
            lambda r: sync_ep.predict(r, timeout=60),
            lambda r: server_sync_ep.predict(r, timeout=60),
            lambda r: async_ep.predict(r).get(timeout=60),
            two_calls,
        ):
            start = time.perf_counter()
            response = call(request)
            timings.append(time.perf_counter() - start)
            expect_echo(response, args)
        if i >= plan.warmup:
            for kept, timing in zip(samples, timings, strict=True):
                kept.append(timing)
    return samples[0], samples[1], samples[2], samples[3]


def polled(client: launch.LaunchClient, name: str, plan: Plan) -> list[float]:
    """Simulated fixed-interval polling: submit, then get_async_response at 2 s, 4 s, ... until done."""
    out: list[float] = []
    for i in range(plan.poll_n):
        start = time.perf_counter()
        task_id = client.async_request(name, args={"x": i}, return_pickled=False)
        for k in range(1, 31):  # bounded: 30 polls (60 s at 2 s)
            time.sleep(max(0.0, start + k * plan.poll_interval_s - time.perf_counter()))
            answer = client.get_async_response(task_id)
            if answer["state"] in TERMINAL_STATES:
                if answer["state"] != "SUCCESS" or json.loads(answer.get("result", "null")) != {"x": i}:
                    raise AssertionError(f"unexpected polled answer {answer!r}")
                out.append(time.perf_counter() - start)
                break
        else:
            raise TimeoutError(f"polled task {task_id} not done after 30 polls")
    return out


# ---- phases 2 and 3: queue runs ------------------------------------------------------------------


@dataclass
class QueueRun:
    """One batch submitted and watched to the end, with every stored result checked."""

    n: int
    submit_s: float = math.nan  # predict_batch call (BatchCreateTasks), start to answer
    first_success_s: float = math.nan  # end of submission -> first SUCCESS seen on the watch stream
    all_done_s: float = math.nan  # start of submission -> last task terminal on the watch stream
    drain_after_submit_s: float = math.nan  # end of submission -> last task terminal
    states: dict[str, int] = field(default_factory=dict)  # from the stored rows, read back afterwards
    wrong_results: int = 0
    watch_timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.states.get("SUCCESS", 0) == self.n and self.wrong_results == 0

    @property
    def tasks_per_s(self) -> float:
        return self.n / self.all_done_s if self.all_done_s > 0 else math.nan


def queue_run(client: launch.LaunchClient, endpoint: Any, n: int, offset: int = 0) -> QueueRun:
    """Submits n echo tasks in one predict_batch and watches all of them on one WatchTasks stream.

    Why one stream: the server pushes each completion as it commits it, so the last message's time
    is when the queue actually drained; is_done(poll=True) loops would add their own interval."""
    if n > MAX_WATCH:
        raise ValueError(f"at most {MAX_WATCH} tasks per run (one WatchTasks stream)")
    run = QueueRun(n=n)
    requests = [
        launch.EndpointRequest(args={"x": offset + i}, request_id=str(offset + i), return_pickled=False)
        for i in range(n)
    ]
    start = time.perf_counter()
    batch = endpoint.predict_batch(requests)
    submitted = time.perf_counter()
    run.submit_s = submitted - start
    ids = list(batch.request_ids.values())
    finished: set[str] = set()
    last = math.nan
    try:
        for task in client.endpoint_calls.watch(ids, timeout=60 + n / 20):
            if state_name(task.state) not in TERMINAL_STATES or task.task_id in finished:
                continue
            finished.add(task.task_id)
            now = time.perf_counter()
            last = now
            if math.isnan(run.first_success_s) and state_name(task.state) == "SUCCESS":
                run.first_success_s = now - submitted
    except TimeoutError:
        run.watch_timed_out = True
    if len(finished) == n:
        run.all_done_s = last - start
        run.drain_after_submit_s = last - submitted
    check_stored(client, batch.request_ids, run)
    return run


def check_stored(client: launch.LaunchClient, request_ids: dict[str, str], run: QueueRun) -> None:
    """Reads every task back (a WatchTasks snapshot comes from the database) and checks its result."""
    by_task = {task_id: int(rid) for rid, task_id in request_ids.items()}
    latest: dict[str, Any] = {}
    try:
        for task in client.endpoint_calls.watch(list(by_task), timeout=30):
            latest[task.task_id] = task
    except TimeoutError:
        pass  # some tasks are not terminal: the snapshot already arrived, the counts say the rest
    states: Counter[str] = Counter(state_name(t.state) for t in latest.values())
    states["(not read back)"] = len(by_task) - len(latest)
    run.states = {k: v for k, v in states.items() if v}
    for task_id, task in latest.items():
        if state_name(task.state) == "SUCCESS":
            try:
                good = json.loads(task.result.result) == {"x": by_task[task_id]}
            except ValueError:
                good = False
            run.wrong_results += not good


def cold_drain(client: launch.LaunchClient, bundle: launch.ModelBundle, n: int) -> tuple[QueueRun | None, str]:
    """A queue of n tasks on a min_workers=0 endpoint that has scaled to 0: time to start draining."""
    endpoint, ready_s = make_endpoint(client, "echo-zero", bundle, "async", min_workers=0, max_workers=2, per_worker=2)
    at_zero = wait_workers(endpoint, 0, timeout=60)
    if at_zero is None:
        note = f"READY in {ready_s:.1f} s, but not at 0 available workers within 60 s: measured anyway"
    else:
        note = f"READY in {ready_s:.1f} s; 0 available workers {at_zero:.1f} s after READY"
    return queue_run(client, endpoint, n, offset=1_000_000), note


# ---- the run --------------------------------------------------------------------------------------


def ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:,.1f}" if values else "n/a"


def fmt_s(value: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


def throughput_on(server: Server, plan: Plan, bundle: launch.ModelBundle | None = None) -> QueueRun:
    """Creates the async echo endpoint when needed, warms it with a small batch, then the N-task run."""
    client = server.client
    endpoint = client.get_model_endpoint("echo-async")
    if endpoint is None:
        endpoint, _ = make_endpoint(client, "echo-async", bundle or echo_bundle(client), "async")
    warm = queue_run(client, endpoint, plan.warm_tasks, offset=2_000_000)
    if not warm.ok:
        print(f"warning: warm-up batch on {server.label} not clean: {warm.states}", file=sys.stderr)
    print(f"[{server.label}] throughput run: {plan.tasks} tasks", flush=True)
    run = queue_run(client, endpoint, plan.tasks)
    print(
        f"[{server.label}] submit {run.submit_s:.2f} s, all done {fmt_s(run.all_done_s)} s, "
        f"{fmt_s(run.tasks_per_s, 0)} tasks/s, states {run.states}",
        flush=True,
    )
    return run


def with_server(
    procs: Procs, root: Path, label: str, env: dict[str, str], body: Callable[[Server], None], notes: list[str]
) -> None:
    """Runs one server for `body`, then stops it and waits for its exit before the next one starts."""
    t = time.monotonic()
    server = start_server(procs, root, label, env)
    print(f"[{label}] SERVING in {time.monotonic() - t:.1f} s at {server.address}", flush=True)
    try:
        body(server)
    except Exception as exc:  # noqa: BLE001 - the other configurations still run; the report says why
        notes.append(f"{label}: phase failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        print(f"[{label}] failed: {exc!r}\n--- server log ---\n{tail(server.log_path)}", file=sys.stderr)
    finally:
        notes.extend(log_notes(server))
        stopped = stop_server(server)
        print(f"[{label}] stopped in {stopped:.1f} s (exit {server.proc.returncode})", flush=True)
        if server.proc.returncode != 0:
            notes.append(f"{label}: launch-server exited with {server.proc.returncode} after SIGTERM")
        if reaped := reap_leftovers(server):
            notes.append(f"{label}: {reaped} Ray process(es) of this server outlived it by 20 s; killed by pid")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small counts")
    parser.add_argument("--skip-pg", action="store_true", help="no PostgreSQL row (no local PostgreSQL)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the run's temp dir (server and Ray logs)")
    args = parser.parse_args()
    plan = Plan.quick() if args.quick else Plan()

    load_before = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="abench-", dir="/tmp"))
    procs = Procs()
    notes: list[str] = []
    latency: dict[str, list[float]] = {}
    runs: dict[str, QueueRun] = {}
    cold: dict[str, Any] = {}
    pg_url: str | None = None
    try:
        prepare_environment(root)

        def sqlite_main(server: Server) -> None:
            client = server.client
            bundle = echo_bundle(client)
            sync_ep, sync_ready = make_endpoint(client, "echo-sync", bundle, "sync")
            async_ep, async_ready = make_endpoint(client, "echo-async", bundle, "async")
            print(f"[{server.label}] READY: sync {sync_ready:.1f} s, async {async_ready:.1f} s", flush=True)
            via_server = launch.LaunchClient(
                api_key=server.api_key,
                endpoint=server.address,
                direct_route=False,
            ).get_model_endpoint("echo-sync")
            latency["sync"], latency["sync-server"], latency["async"], latency["async-two-calls"] = latency_pair(
                sync_ep, via_server, async_ep, plan
            )
            print(
                f"[{server.label}] p50 sync {ms(latency['sync'], 50)} ms, async {ms(latency['async'], 50)} ms",
                flush=True,
            )
            latency["polled"] = polled(client, "echo-async", plan)
            delete_endpoint(client, "echo-sync")
            runs["sqlite"] = throughput_on(server, plan)
            print(f"[{server.label}] drain from zero: {plan.cold_tasks} tasks", flush=True)
            cold["run"], cold["note"] = cold_drain(client, bundle, plan.cold_tasks)

        with_server(procs, root, "sqlite", {}, sqlite_main, notes)
        with_server(
            procs,
            root,
            "sqlite-nogroup",
            {"LAUNCH_TASK_GROUP_MAX": "1"},
            lambda s: runs.__setitem__("sqlite-nogroup", throughput_on(s, plan)),
            notes,
        )
        if not args.skip_pg:
            pg_url = create_pg_database()
            with_server(
                procs,
                root,
                "postgres",
                {"LAUNCH_DATABASE_URL": pg_url},
                lambda s: runs.__setitem__("postgres", throughput_on(s, plan)),
                notes,
            )
    finally:
        procs.stop_all()
        if pg_url is not None:
            drop_pg_database(pg_url)
        if args.keep_logs:
            print(f"logs kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    load_after = os.getloadavg()
    report(plan, args.quick, latency, runs, cold, notes, load_before, load_after)


def report(
    plan: Plan,
    quick: bool,
    latency: dict[str, list[float]],
    runs: dict[str, QueueRun],
    cold: dict[str, Any],
    notes: list[str],
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> None:
    """Prints the run's markdown tables (the output docs/benchmarks.md quotes)."""
    print()
    print(
        f"Async tasks, trivial echo; {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}; {'QUICK SMOKE RUN (small counts)' if quick else 'full run'}; "
        f"endpoints cpus=1, memory=256Mi, min_workers=1, max_workers=2, per_worker=2; load average (1/5/15 min) "
        f"{'/'.join(f'{x:.2f}' for x in load_before)} before, {'/'.join(f'{x:.2f}' for x in load_after)} after"
    )
    print()
    print(f"1. Concurrency 1, SQLite server: {plan.latency_n} requests per path after {plan.warmup} warm-up")
    print()
    print("| path | p50 ms | p99 ms | requests |")
    print("|---|---:|---:|---:|")
    sync_s, async_s, polled_s = latency.get("sync", []), latency.get("async", []), latency.get("polled", [])
    analytic = [math.ceil(x / plan.poll_interval_s) * plan.poll_interval_s for x in async_s]
    server_s = latency.get("sync-server", [])
    two_calls_s = latency.get("async-two-calls", [])
    rows = [
        ("sync: `SyncEndpoint.predict` (direct route, the SDK's default)", sync_s),
        ("sync through the server: `LaunchClient(direct_route=False)`", server_s),
        ("async: `AsyncEndpoint.predict(...).get()` (one CreateAndWatchTask call)", async_s),
        ("async on two calls: CreateTask, then WatchTasks (the SDK before; older servers)", two_calls_s),
        (f"async, {plan.poll_interval_s:g} s polling simulated (`get_async_response` every 2 s)", polled_s),
        ("async, 2 s polling computed (each async sample above rounded up to the next 2 s poll)", analytic),
    ]
    for label, values in rows:
        print(f"| {label} | {ms(values, 50)} | {ms(values, 99)} | {len(values)} |")
    if sync_s and async_s:
        ratio = statistics.median(async_s) / statistics.median(sync_s)
        print(f"\nasync p50 / sync p50 = {ratio:.2f} (goal <= 2)")
    if server_s and async_s:
        ratio = statistics.median(async_s) / statistics.median(server_s)
        print(f"async p50 / sync-through-the-server p50 = {ratio:.2f}")
    if two_calls_s and async_s:
        ratio = statistics.median(two_calls_s) / statistics.median(async_s)
        print(f"two calls p50 / one call p50 = {ratio:.2f}")
    print()
    print(f"2. Sustained throughput: {plan.tasks:,} tasks in one `predict_batch`, watched on one WatchTasks stream")
    print()
    print(
        "| server | submit s | all done s (from submit start) | drain s (after submit) | tasks/s | "
        "stored states | wrong results | zero lost |"
    )
    print("|---|---:|---:|---:|---:|---|---:|---|")
    labels = {
        "sqlite": "SQLite (default, grouping up to 64)",
        "sqlite-nogroup": "SQLite, LAUNCH_TASK_GROUP_MAX=1 (no grouping)",
        "postgres": "PostgreSQL (grouping up to 64)",
    }
    for key, label in labels.items():
        run = runs.get(key)
        if run is None:
            print(f"| {label} | n/a | | | | | | |")
            continue
        states = ", ".join(f"{k} {v:,}" for k, v in sorted(run.states.items()))
        print(
            f"| {label} | {fmt_s(run.submit_s)} | {fmt_s(run.all_done_s)} | {fmt_s(run.drain_after_submit_s)} | "
            f"{fmt_s(run.tasks_per_s, 0)} | {states} | {run.wrong_results} | {'yes' if run.ok else 'NO'} |"
        )
    grouped, single = runs.get("sqlite"), runs.get("sqlite-nogroup")
    if grouped and single and single.tasks_per_s > 0:
        print(f"\ngrouping gain on SQLite: {grouped.tasks_per_s / single.tasks_per_s:.2f}x tasks/s")
    print()
    print(f"3. Drain from zero: {plan.cold_tasks:,} tasks on a min_workers=0 endpoint (max_workers=2, per_worker=2)")
    print()
    run = cold.get("run")
    if run is None:
        print("n/a (see notes)")
    else:
        print(
            "| submit s | end of submit -> first SUCCESS s | end of submit -> all done s | stored states | zero lost |"
        )
        print("|---:|---:|---:|---|---|")
        states = ", ".join(f"{k} {v:,}" for k, v in sorted(run.states.items()))
        print(
            f"| {fmt_s(run.submit_s)} | {fmt_s(run.first_success_s)} | {fmt_s(run.drain_after_submit_s)} | "
            f"{states} | {'yes' if run.ok else 'NO'} |"
        )
        print(f"\n{cold['note']}")
    if notes:
        print("\nNotes (phase failures; WARNING/ERROR lines in the server logs, most frequent first):")
        for note in notes:
            print(f"- {note}")


if __name__ == "__main__":
    main()
