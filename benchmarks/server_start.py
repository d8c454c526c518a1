"""Fresh starts of `launch-server serve` with its own local Ray: how long until the health service
reports `launch.v1.InferenceService` SERVING (the serving layer joined Ray and made its first
reconcile pass).

Each start gets a fresh data directory, a fresh RAY_TMPDIR and a unique marker in its environment;
afterwards the server is stopped with SIGTERM and every process that carries the marker (the
server, its Ray, Ray's workers) is ended by pid, so nothing outlives the run and nobody else's
processes are touched. Prints one row per start and the median and maximum.

    .venv/bin/python -m benchmarks.server_start --starts 20
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.server_process import ServerStartError, pids_with_env, start_launch_server

STOP_S = 60.0  # SIGTERM grace: the server shuts its own Ray down first
MARKER = "LAUNCH_BENCH_START_MARKER"
# Lines in the server's log that tell why a start was slow.
SIGNS = {
    "ray_retry": "could not start or join Ray",
    "node_timeout": "timed out during startup",
    "fork_warning": "skipping fork() handlers",
}


@dataclass
class Start:
    seconds: float | None
    load1: float
    signs: dict[str, int]


def end_marked(marker: str) -> None:
    """SIGTERM, a grace period, then SIGKILL, for every process started with this marker."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 0.0)):
        pids = pids_with_env(MARKER, marker)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            time.sleep(0.2)
            pids = pids_with_env(MARKER, marker)


def one_start(timeout_s: float, keep: Path | None, index: int) -> Start:
    data_dir = Path(tempfile.mkdtemp(prefix="launch-start-"))
    ray_tmp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths have a limit
    marker = uuid.uuid4().hex
    env = {
        MARKER: marker,
        "RAY_TMPDIR": ray_tmp,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
        "LAUNCH_SERVING": "1",
    }
    log_path = data_dir / "server.log"
    load1 = os.getloadavg()[0]
    started = time.monotonic()
    seconds = None
    try:
        server = start_launch_server(
            data_dir,
            env,
            unset=("LAUNCH_RAY_ADDRESS",),  # a Ray of its own: that start is what is measured
            wait="serving_layer",
            timeout=timeout_s,
            poll_s=0.1,
            log_path=log_path,
            stop_timeout=STOP_S,
        )
        seconds = time.monotonic() - started
        server.stop()
    except ServerStartError:
        pass  # a start that never reached SERVING is a row of its own ("timeout"); it is stopped
    finally:
        end_marked(marker)
    text = log_path.read_text(errors="replace")
    signs = {name: text.count(needle) for name, needle in SIGNS.items()}
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(log_path, keep / f"start-{index:02d}.log")
        if any(signs[name] for name in ("ray_retry", "node_timeout")):
            shutil.copytree(ray_tmp, keep / f"start-{index:02d}-ray", symlinks=True, ignore_dangling_symlinks=True)
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.rmtree(ray_tmp, ignore_errors=True)
    return Start(seconds, load1, signs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds one start may take")
    parser.add_argument("--keep-logs", type=Path, default=None, help="copy each server log here")
    args = parser.parse_args()

    results: list[Start] = []
    print(f"{'start':>5} {'seconds':>8} {'load1':>6} " + " ".join(f"{name:>12}" for name in SIGNS), flush=True)
    for index in range(1, args.starts + 1):
        start = one_start(args.timeout, args.keep_logs, index)
        results.append(start)
        shown = f"{start.seconds:8.2f}" if start.seconds is not None else f"{'timeout':>8}"
        row = " ".join(f"{start.signs[name]:>12}" for name in SIGNS)
        print(f"{index:>5} {shown} {start.load1:6.2f} {row}", flush=True)
    times = [r.seconds for r in results if r.seconds is not None]
    failed = len(results) - len(times)
    if times:
        print(
            f"\n{len(times)} of {len(results)} starts reached SERVING: median {statistics.median(times):.2f} s, "
            f"max {max(times):.2f} s, min {min(times):.2f} s; {failed} timed out; "
            f"load1 {min(r.load1 for r in results):.2f}-{max(r.load1 for r in results):.2f}"
        )
    else:
        print(f"\nno start reached SERVING within {args.timeout} s")


if __name__ == "__main__":
    main()
