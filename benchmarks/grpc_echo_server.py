"""A bare grpc.aio echo server and its client, plus the async load harness the sync-predict benchmark shares.

Why it exists: a trivial unary echo over grpc.aio on loopback, with no framework in between, is the
ceiling for any gRPC serving path on this machine; `benchmarks/sync_predict.py` reports every other
path next to it. The server does the same per-request work as the other echo paths (parse the JSON
args, call `echo(**args)`, dump JSON) so the difference is the framework, not the payload handling.

The harness (`measure_async`) lives here, not in sync_predict.py, because it has to run in three
interpreters: the main venv (Ray handle path, HTTP client), this script's client, and the KServe
venv's client (`kserve_echo_server.py` imports it from this directory); so it needs only the standard
library at import time.

    python benchmarks/grpc_echo_server.py serve               # prints "PORT <n>" once listening
    python benchmarks/grpc_echo_server.py client --target 127.0.0.1:<n>   # prints JSON
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

METHOD = "/bench.Echo/Echo"
PAYLOAD = json.dumps({"x": 1}).encode()


@dataclass
class LoadPlan:
    """How much load one measurement sends; bounded in count and in time (the workplace rule)."""

    warmup: int = 30  # untimed sequential calls before the latency run
    latency_n: int = 300  # timed sequential calls (concurrency 1)
    concurrency: int = 32  # in-flight calls for the throughput run
    rps_warmup_s: float = 2.0  # throughput run: seconds at full concurrency before counting starts
    rps_s: float = 5.0  # throughput run: seconds counted
    max_requests: int = 200_000  # hard cap on calls in the throughput run
    max_errors: int = 50  # give up a run after this many failed calls

    @classmethod
    def quick(cls) -> LoadPlan:
        """Smoke-run sizes: enough to see that a path works, not to compare it."""
        return cls(warmup=10, latency_n=60, rps_warmup_s=0.5, rps_s=1.5)

    def add_cli(self, parser: argparse.ArgumentParser) -> None:
        """Exposes every field as --field-name so a parent process can pass its plan to a client."""
        for name, value in asdict(self).items():
            parser.add_argument("--" + name.replace("_", "-"), type=type(value), default=value)

    @classmethod
    def from_cli(cls, args: argparse.Namespace) -> LoadPlan:
        return cls(**{name: getattr(args, name) for name in asdict(cls())})

    def to_cli(self) -> list[str]:
        out: list[str] = []
        for name, value in asdict(self).items():
            out += ["--" + name.replace("_", "-"), str(value)]
        return out


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): with 300 samples p99 is the 297th, no interpolation."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(latencies_s: list[float], completed: int, window_s: float, errors: int, **extra: Any) -> dict[str, Any]:
    """The result record every client prints: p50/p99 in ms at concurrency 1, req/s at concurrency N."""
    return {
        "p50_ms": percentile(latencies_s, 50) * 1000,
        "p99_ms": percentile(latencies_s, 99) * 1000,
        "rps": completed / window_s if window_s > 0 else math.nan,
        "latency_samples": len(latencies_s),
        "rps_completed": completed,
        "errors": errors,
        **extra,
    }


async def measure_async(call: Callable[[], Awaitable[Any]], plan: LoadPlan) -> dict[str, Any]:
    """Latency at concurrency 1, then requests/s at `plan.concurrency` tasks on this event loop.

    Throughput counts only calls that complete inside the window after the warm-up, so ramp-up and
    the tail of in-flight calls at the end are left out."""
    errors = 0

    async def one() -> float:
        nonlocal errors
        start = time.perf_counter()
        try:
            await call()
        except Exception as exc:  # noqa: BLE001 - counted and reported; a run gives up after max_errors
            errors += 1
            if errors == 1:
                print(f"first error: {exc!r}", file=sys.stderr)
            if errors >= plan.max_errors:
                raise RuntimeError(f"{errors} failed calls, last: {exc!r}") from exc
            return math.nan
        return time.perf_counter() - start

    for _ in range(plan.warmup):
        await one()
    latencies = [d for d in [await one() for _ in range(plan.latency_n)] if not math.isnan(d)]

    started = 0
    completed = 0
    t0 = time.perf_counter() + plan.rps_warmup_s
    t1 = t0 + plan.rps_s

    async def worker() -> None:
        nonlocal started, completed
        while time.perf_counter() < t1 and started < plan.max_requests:
            started += 1
            await one()
            if t0 <= time.perf_counter() < t1:
                completed += 1

    await asyncio.gather(*(worker() for _ in range(plan.concurrency)))
    return summarize(latencies, completed, plan.rps_s, errors)


def echo(**kwargs: Any) -> Any:
    """The benchmark's model: return the arguments, as the Launch bundle's echo does."""
    return kwargs


async def serve(host: str) -> None:
    """Runs the echo server on an ephemeral loopback port until SIGTERM/SIGINT; prints its port."""
    import grpc

    async def handle(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return json.dumps(echo(**json.loads(request))).encode()

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(handle)}),)
    )
    port = server.add_insecure_port(f"{host}:0")
    await server.start()
    print(f"PORT {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=1)


async def client(target: str, plan: LoadPlan) -> dict[str, Any]:
    """Drives the echo server over one grpc.aio channel (HTTP/2 multiplexes the concurrent calls)."""
    import grpc

    async with grpc.aio.insecure_channel(target) as channel:
        method = channel.unary_unary(METHOD)

        async def call() -> None:
            reply = await method(PAYLOAD, timeout=30)
            if json.loads(reply) != {"x": 1}:
                raise AssertionError(f"unexpected reply {reply!r}")

        return await measure_async(call, plan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve")
    p_serve.add_argument("--host", default="127.0.0.1")
    p_client = sub.add_parser("client")
    p_client.add_argument("--target", required=True)
    LoadPlan().add_cli(p_client)
    args = parser.parse_args()
    if args.command == "serve":
        asyncio.run(serve(args.host))
    else:
        print(json.dumps(asyncio.run(client(args.target, LoadPlan.from_cli(args)))))


if __name__ == "__main__":
    main()
