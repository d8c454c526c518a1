"""Bundle upload throughput and server start-up time, per storage backend.

Why these numbers: a bundle upload is the one RPC that moves hundreds of megabytes through the
server, so its throughput and the server's memory while it streams (the server must stream to
storage, not buffer whole artifacts) are what an operator sizes a host by; start-up time is what a
restart or a rolling deploy costs before the health check passes.

For each backend, (a) SQLite + local storage and (b) PostgreSQL + S3 (moto's S3 server on loopback),
a fresh launch-server uploads a 200 MB cloudpickle bundle three times through the SDK
(`create_model_bundle(model=..., load_predict_fn=...)`, which streams UploadModelBundle in 1 MiB
chunks). Start-up is timed separately from spawning launch-server to Health/Check answering
SERVING, three times on a fresh data directory (and a fresh database for PostgreSQL).

Run from the repository root: .venv/bin/python -m benchmarks.bundle_upload
It needs the PostgreSQL that tests use (LAUNCH_TEST_PG_URL, default 127.0.0.1:5432)."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import launch

from tests.support import (
    S3_ENV,
    S3Server,
    ServerHandle,
    create_pg_database,
    drop_pg_database,
    start_s3_server,
    start_server,
    stop_process,
)

MB = 1_000_000
ENV_PARAMS = {"framework_type": "pytorch", "pytorch_image_tag": "2.1.0"}


def load_predict_fn(model: bytes) -> Callable[[Any], Any]:
    """The bundle's load_predict_fn; what it does is irrelevant, the 200 MB model is the payload."""
    return lambda request: len(model)


@dataclass
class Backend:
    """How to point a server at one storage backend; `make` returns start_server kwargs and a cleanup."""

    name: str
    make: Callable[[Path], tuple[dict[str, Any], Callable[[], None]]]


@dataclass
class Result:
    backend: str
    upload_s: list[float] = field(default_factory=list)
    baseline_rss_kib: int = 0
    peak_rss_kib: int = 0
    startup_s: list[float] = field(default_factory=list)


def sqlite_local(data_dir: Path) -> tuple[dict[str, Any], Callable[[], None]]:
    return {}, lambda: None


def postgres_s3(s3: S3Server) -> Callable[[Path], tuple[dict[str, Any], Callable[[], None]]]:
    def make(data_dir: Path) -> tuple[dict[str, Any], Callable[[], None]]:
        url = create_pg_database()
        kwargs = {
            "database_url": url,
            "storage_url": f"s3://{s3.bucket}/bench-{uuid.uuid4().hex[:8]}",
            "extra_env": {**S3_ENV, "LAUNCH_S3_ENDPOINT_URL": s3.endpoint_url},
        }
        return kwargs, lambda: drop_pg_database(url)

    return make


def proc_status_kib(pid: int, field_name: str) -> int:
    """A memory figure (VmRSS, VmHWM) of a process from /proc, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise KeyError(field_name)


@contextmanager
def server_for(backend: Backend, root: Path) -> Iterator[ServerHandle]:
    data_dir = Path(tempfile.mkdtemp(prefix=f"{backend.name}-", dir=root))
    kwargs, cleanup = backend.make(data_dir)
    handle = start_server(data_dir, **kwargs)
    try:
        yield handle
    finally:
        handle.stop()
        cleanup()


def measure_startup(backend: Backend, root: Path) -> float:
    """Seconds from spawning launch-server (fresh data dir/database) to Health/Check == SERVING."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"start-{backend.name}-", dir=root))
    kwargs, cleanup = backend.make(data_dir)
    try:
        start = time.monotonic()
        server = start_server(data_dir, **kwargs, wait="health", poll_s=0.01)
        seconds = time.monotonic() - start
        server.stop()
        return seconds
    finally:
        cleanup()


def measure_uploads(backend: Backend, root: Path, payload: bytes, runs: int) -> Result:
    result = Result(backend.name)
    with server_for(backend, root) as server:
        pid = server.proc.pid
        result.baseline_rss_kib = proc_status_kib(pid, "VmRSS")
        client = launch.LaunchClient(api_key=server.key_for("bench"), endpoint=server.address, timeout=600)
        for i in range(runs):
            start = time.monotonic()
            bundle = client.create_model_bundle(
                f"bench-{i}",
                env_params=ENV_PARAMS,
                load_predict_fn=load_predict_fn,
                model=payload,
                requirements=[],
            )
            result.upload_s.append(time.monotonic() - start)
            assert bundle.size_bytes >= len(payload), bundle
        result.peak_rss_kib = proc_status_kib(pid, "VmHWM")
    return result


def table(results: list[Result], size_bytes: int, runs: int) -> str:
    def row(label: str, fmt: Callable[[Result], str]) -> str:
        return "| " + " | ".join([label, *(fmt(r) for r in results)]) + " |"

    mib = 1024
    lines = [
        "| metric | " + " | ".join(r.backend for r in results) + " |",
        "|---" * (len(results) + 1) + "|",
        row(
            f"upload {size_bytes / MB:.0f} MB bundle, median of {runs} (s)",
            lambda r: f"{statistics.median(r.upload_s):.2f}",
        ),
        row("upload runs (s)", lambda r: ", ".join(f"{s:.2f}" for s in r.upload_s)),
        row("throughput at median (MB/s)", lambda r: f"{size_bytes / MB / statistics.median(r.upload_s):.0f}"),
        row("server RSS before uploads (MiB)", lambda r: f"{r.baseline_rss_kib / mib:.0f}"),
        row("server peak RSS, VmHWM after uploads (MiB)", lambda r: f"{r.peak_rss_kib / mib:.0f}"),
        row(
            f"start to SERVING, median of {len(results[0].startup_s)} fresh starts (s)",
            lambda r: f"{statistics.median(r.startup_s):.2f}",
        ),
        row("start to SERVING runs (s)", lambda r: ", ".join(f"{s:.2f}" for s in r.startup_s)),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=200, help="model payload size in MB (10^6 bytes)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    payload = os.urandom(args.size_mb * MB)  # random: nothing on the path may shrink it
    s3 = start_s3_server()
    backends = [Backend("sqlite-local", sqlite_local), Backend("postgres-s3", postgres_s3(s3))]
    results: list[Result] = []
    try:
        with tempfile.TemporaryDirectory(prefix="launch-bench-") as tmp:
            root = Path(tmp)
            for backend in backends:
                result = measure_uploads(backend, root, payload, args.runs)
                result.startup_s = [measure_startup(backend, root) for _ in range(args.runs)]
                results.append(result)
    finally:
        stop_process(s3.proc)
    print(
        f"launch-server bundle upload, {platform.node()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M %Z')}"
    )
    print()
    print(table(results, len(payload), args.runs))


if __name__ == "__main__":
    main()
