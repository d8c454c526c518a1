"""Starts or joins the Ray cluster and Ray Serve. Local mode runs a single-node Ray head in a
child process of its own (serving/ray_head.py), every Ray process on loopback and in a temp dir
of its own, and connects to it; joining an existing cluster takes its address.

The local head is not started by `ray.init()` inside the server: that spawns Ray's processes
from the gRPC server's threaded process (fork with `preexec_fn`), which stalled the raylet's
start now and then. The child process also makes a lost local Ray visible (it exits) and lets
the server start a new one while it keeps running.

Serve settings whose defaults hurt (see docs/architecture.md) are applied here:
RAY_SERVE_THROUGHPUT_OPTIMIZED makes handle calls cheaper and must be set before Ray starts, in
this process and (through the inherited environment) in every Ray worker."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
READY_LINE = "Ray runtime started"
DRIVER_GCS_TIMEOUT_ENV = "RAY_gcs_rpc_server_reconnect_timeout_s"
DRIVER_GCS_TIMEOUT_S = str(24 * 3600)  # in seconds; Ray counts it in milliseconds too


@dataclass
class ClusterOptions:
    address: str = ""
    num_cpus: int = 16
    throughput_optimized: bool = True
    namespace: str = "launch"
    start_timeout_s: float = 120.0
    log_dir: str = ""  # where the local head's own output goes (the temp dir when empty)


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
    # Ray joins a cluster on its own when an API finds no connection; after a lost cluster that
    # would be the dead one (see ray_gate): the server joins only through connect().
    os.environ["RAY_ENABLE_AUTO_CONNECT"] = "0"
    # A driver's GCS client that cannot reach its GCS for this long ends the whole process; after
    # a lost cluster, clients of the old one linger in calls that were under way (see ray_gate),
    # so in the server it is "never". Ray's own processes keep Ray's default (LocalHead.launch).
    os.environ.setdefault(DRIVER_GCS_TIMEOUT_ENV, DRIVER_GCS_TIMEOUT_S)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _enable_token_auth() -> None:
    """A local head and this driver must agree on Ray's token auth: on unless the environment
    says otherwise (as `ray.init()` decides for a cluster it starts), with a token created when
    none exists yet; the head inherits the setting."""
    from ray._private.authentication.authentication_token_setup import (
        enable_token_auth_by_default,
        ensure_token_if_auth_enabled,
    )

    enable_token_auth_by_default()
    ensure_token_if_auth_enabled(None, create_token_if_missing=True)


class LocalHead:
    """The server's own single-node Ray, run by `ray start --head --block` in a child process."""

    def __init__(self, proc: subprocess.Popen, address: str, log_path: Path) -> None:
        self.proc = proc
        self.address = address
        self.log_path = log_path

    @classmethod
    def launch(cls, options: ClusterOptions) -> LocalHead:
        """Spawns the head. Call it on the event loop's (main) thread: the head's parent-death
        signal follows the thread that spawned it. No `preexec_fn`, so the child runs no Python
        between fork and exec."""
        configure_environment(options)
        _enable_token_auth()
        port = _free_port()
        log_dir = Path(options.log_dir) if options.log_dir else Path(os.environ.get("RAY_TMPDIR") or "/tmp")
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"ray-head-{port}.log"
        args = [
            sys.executable,
            "-m",
            "launch_server.serving.ray_head",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={options.num_cpus}",
            "--include-dashboard=false",
            f"--dashboard-port={_free_port()}",
            f"--ray-client-server-port={_free_port()}",  # `ray start --head` always runs one
            "--disable-usage-stats",
            "--log-style=record",
        ]
        from launch_server.serving.ray_head import PARENT_ENV

        env = {**os.environ, PARENT_ENV: str(os.getpid())}
        env.pop(DRIVER_GCS_TIMEOUT_ENV, None)
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                args, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, close_fds=True
            )
        log.info("starting a local Ray head (pid %d) at 127.0.0.1:%d; its output: %s", proc.pid, port, log_path)
        return cls(proc, f"127.0.0.1:{port}", log_path)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout_s: float) -> None:
        """Blocks until the head says it started; raises when it exited or took too long."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if READY_LINE in self.log_path.read_text(errors="replace"):
                return
            if not self.alive():
                raise RuntimeError(f"the local Ray head exited with {self.proc.returncode}: {self._tail()}")
            time.sleep(0.1)
        raise TimeoutError(f"the local Ray head did not start within {timeout_s:.0f} s: {self._tail()}")

    def _tail(self) -> str:
        lines = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(lines[-5:])[-1500:]

    def stop(self) -> int:
        """SIGTERM (the head then stops every Ray process it started), then by pid whatever of
        them is left. Returns how many leftover processes had to be ended."""
        leftovers = _descendants(self.proc.pid)
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        alive = [pid for pid in leftovers if os.path.exists(f"/proc/{pid}")]
        _end(alive)
        return len(alive)


def connect(options: ClusterOptions, address: str) -> None:
    """Joins the cluster at `address` as a driver and starts Serve without its HTTP proxy
    (blocking: run it in a worker thread). Joining starts no processes here."""
    configure_environment(options)
    import ray
    from ray import serve
    from ray._private import auto_init_hook

    auto_init_hook.enable_auto_connect = False  # read at import, which may precede the line above
    if not ray.is_initialized():
        ray.init(address=address, namespace=options.namespace, log_to_driver=False)
    serve.start(proxy_location="Disabled", logging_config={"enable_access_log": False})
    log.info("Ray ready (%s), Serve started", address)


def gcs_reachable(address: str, timeout_s: float = 2.0) -> bool:
    """Whether the GCS at `host:port` accepts a connection (blocking); no Ray call, so it is
    safe while the driver's own connection is gone."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def serve_status(timeout_s: float):  # type: ignore[no-untyped-def]  # ray.serve.schema.ServeStatus
    """serve.status() with a deadline (blocking). serve.status() waits on the controller without
    one, so a pass under way when the cluster dies would still be inside Ray when the server
    disconnects, and ray.shutdown() under a thread blocked in a Ray call can crash the process."""
    import ray
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeInstanceDetails, ServeStatus

    client = _get_global_client(raise_if_no_controller_running=False)
    if client is None:
        return ServeStatus()
    details = ray.get(client._controller.get_serve_instance_details.remote(), timeout=timeout_s)  # noqa: SLF001
    return ServeInstanceDetails(**details)._get_status()  # noqa: SLF001


def disconnect() -> None:
    """Drops this driver's connection (blocking), for example after the cluster was lost."""
    import ray
    from ray.serve import context

    if ray.is_initialized():
        ray.shutdown()
    # Serve caches its controller's handle per process; a new cluster has a controller of its own.
    context._set_global_client(None)  # noqa: SLF001
    # ray.init left the old cluster's address here, where a later bare ray.init() would find it.
    os.environ.pop("RAY_ADDRESS", None)


async def stop_serve() -> None:
    """Shuts Serve down from the event loop that holds its handles (a synchronous shutdown from
    another thread aborted the process); only for a cluster this server started."""
    import ray
    from ray import serve

    if ray.is_initialized():
        await serve.shutdown_async()


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


def session_log_dir() -> str | None:
    """The local Ray session's log directory, when this process runs on a Ray node."""
    try:
        from ray._private import worker

        node = worker._global_node
        return os.path.join(node.get_session_dir_path(), "logs") if node is not None else None
    except Exception:  # noqa: BLE001 - best effort: logs are an aid, not a requirement
        return None
