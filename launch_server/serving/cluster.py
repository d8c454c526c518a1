"""Starts or joins the Ray cluster and Ray Serve. Local mode keeps every Ray process on loopback
and in a temp dir of its own; joining an existing cluster takes its address.

Serve settings whose defaults hurt (see docs/architecture.md) are applied here:
RAY_SERVE_THROUGHPUT_OPTIMIZED makes handle calls cheaper and must be set before Ray starts, in
this process and (through the inherited environment) in every Ray worker."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class ClusterOptions:
    address: str = ""
    num_cpus: int = 16
    throughput_optimized: bool = True
    namespace: str = "launch"


def configure_environment(options: ClusterOptions) -> None:
    """Environment every Ray process must see before it starts."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # node address 127.0.0.1
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray's C++ failure-signal handler treats SIGTERM as a crash in the driver: it dumps a stack
    # and aborts the process after our own handler started a graceful shutdown.
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
    if options.throughput_optimized:
        os.environ.setdefault("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1")
        # Our replica runs user code in its own thread pool, so Serve may keep its loop.
    # Throughput-optimized mode also turns on direct ingress: every replica would listen on all
    # interfaces with no auth (RAY.md), and deleting an application would wait out a 30 s drain.
    # The server reaches replicas through handles, so it stays off.
    os.environ.setdefault("RAY_SERVE_ENABLE_DIRECT_INGRESS", "0")
    os.environ.setdefault("RAY_SERVE_LOG_TO_STDERR", "0")


def start(options: ClusterOptions) -> bool:
    """Connects to (or starts) Ray and starts Serve without its HTTP proxy. Returns True when
    this process started a local cluster (so it should also shut it down)."""
    configure_environment(options)
    import ray
    from ray import serve

    started_local = False
    if not ray.is_initialized():
        if options.address:
            ray.init(address=options.address, namespace=options.namespace, log_to_driver=False)
        else:
            ray.init(
                num_cpus=options.num_cpus,
                include_dashboard=False,
                namespace=options.namespace,
                log_to_driver=False,
                _node_ip_address="127.0.0.1",
            )
            started_local = True
    serve.start(proxy_location="Disabled", logging_config={"enable_access_log": False})
    log.info("Ray ready (%s), Serve started", "local" if started_local else options.address)
    return started_local


async def stop_serve(started_local: bool) -> None:
    """Shuts Serve down from the event loop that holds its handles (a synchronous shutdown from
    another thread aborted the process), only when this process started the cluster."""
    import ray
    from ray import serve

    if started_local and ray.is_initialized():
        await serve.shutdown_async()


def abandon_start(options: ClusterOptions) -> None:
    """After a failed start: disconnect, and end what a half-started local cluster left running."""
    import ray

    leftovers = [] if options.address else _descendants(os.getpid())
    if ray.is_initialized():
        ray.shutdown()
    _end(leftovers)


def _end(pids: list[int]) -> None:
    """SIGTERM, a 5 s grace, then SIGKILL: only processes this server started."""
    import signal

    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 0.0)):
        alive = [pid for pid in pids if os.path.exists(f"/proc/{pid}")]
        for pid in alive:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = [pid for pid in alive if os.path.exists(f"/proc/{pid}")]


def _descendants(root: int) -> list[int]:
    """Process ids below `root`, read from /proc (Linux); empty elsewhere."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def stop_ray(started_local: bool) -> None:
    """Called on the main thread after the event loop has ended. Ray's dashboard and runtime-env
    agents of a local node outlived ray.shutdown() here (for an hour and more), so whatever this
    process started and is still running afterwards is ended too, by pid."""
    import ray

    if started_local and ray.is_initialized():
        started = _descendants(os.getpid())
        ray.shutdown()
        _end(started)
        log.info("Ray stopped; ended %d leftover process(es) it had started", len(started))


def session_log_dir() -> str | None:
    """The local Ray session's log directory, when this process runs on a Ray node."""
    try:
        from ray._private import worker

        node = worker._global_node
        return os.path.join(node.get_session_dir_path(), "logs") if node is not None else None
    except Exception:  # noqa: BLE001 - best effort: logs are an aid, not a requirement
        return None
