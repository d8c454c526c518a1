"""Starting a `launch-server serve` process and knowing when it is ready: the one place tests and
benchmarks do it, so both see the same environment, log handling and readiness checks.

Readiness has three meanings, because callers need different ones: a listening port (the gRPC
server is bound; enough for control-plane tests), the overall health check SERVING (the control
plane answers), or the health of `launch.v1.InferenceService` SERVING (the serving layer joined Ray
and made its first reconcile pass). Processes are ended by their own pid only, never by name: the
machine is shared with other runs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

BIN = Path(sys.executable).parent
# The installed entry point; `python -m launch_server.cli` serves where no entry point is installed.
SERVER_COMMAND = (str(BIN / "launch-server"),)
MODULE_COMMAND = (sys.executable, "-m", "launch_server.cli")
SERVING_LAYER_SERVICE = "launch.v1.InferenceService"
STOP_TIMEOUT_S = 20.0
# Log lines shown with a failed start: enough for the traceback, not a whole Ray start-up.
LOG_TAIL_LINES = 200

Wait = Literal["port", "health", "serving_layer"]


class ServerStartError(RuntimeError):
    """The server exited, or was not ready in time; it has been stopped already."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


def pids_with_env(name: str, value: str) -> list[int]:
    """Processes (other than this one) whose environment has name=value: a process we started
    with a unique marker and everything it started (the environment is inherited), nothing else,
    so they can be ended by pid without touching anyone else's processes."""
    needle = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue  # exited meanwhile, or not ours to read
    return found


def stop_process(proc: subprocess.Popen, timeout: float = STOP_TIMEOUT_S) -> None:
    """Ends a process we started, by its id only (never by name)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def health_status(address: str, service: str = "", timeout: float = 2.0) -> int | None:
    """The health status of `service` ("" is the server as a whole), or None while nothing
    answers. A fresh channel per check, so a refused connection's reconnect backoff never delays
    noticing that the server came up."""
    try:
        with grpc.insecure_channel(address) as channel:
            request = health_pb2.HealthCheckRequest(service=service)
            return health_pb2_grpc.HealthStub(channel).Check(request, timeout=timeout).status
    except grpc.RpcError:
        return None


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class LaunchServer:
    """A launch-server process this run started, and where it listens and logs."""

    proc: subprocess.Popen
    port: int
    data_dir: Path
    env: dict[str, str]
    log_path: Path
    stop_timeout: float = STOP_TIMEOUT_S

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def dev_api_key(self, timeout: float = 30.0) -> str:
        """The development key the server writes on first start (shortly after it listens)."""
        key_file = Path(self.env["LAUNCH_DATA_DIR"]) / "dev_api_key"
        deadline = time.monotonic() + timeout
        while not key_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        return key_file.read_text().strip()

    def stop(self) -> None:
        """SIGTERM, and SIGKILL after `stop_timeout`: a server with its own Ray needs long enough
        to shut that Ray down, or its processes outlive it."""
        stop_process(self.proc, timeout=self.stop_timeout)


def start_launch_server(
    data_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    port: int | None = None,
    ray_address: str | None = None,
    unset: Iterable[str] = (),
    wait: Wait = "port",
    timeout: float = 60.0,
    poll_s: float = 0.05,
    log_path: Path | None = None,
    cwd: Path | None = None,
    command: Sequence[str] = SERVER_COMMAND,
    stop_timeout: float = STOP_TIMEOUT_S,
) -> LaunchServer:
    """Starts `launch-server serve` on 127.0.0.1 (a free port unless `port`) and returns once it is
    ready in the sense of `wait`; on failure it stops the process and raises ServerStartError with
    the log's tail.

    The environment is this process's, then LAUNCH_DATA_DIR=data_dir and unbuffered output, then
    `env`, less the names in `unset` (LAUNCH_RAY_ADDRESS, for a server that must start a Ray of its
    own). The log goes to `log_path` (default data_dir/server-<port>.log); the process runs in `cwd`
    (default data_dir)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    # Metrics on an ephemeral port unless a test names one: servers started side by side must not
    # contend for the default port.
    full_env = {
        **os.environ,
        "LAUNCH_DATA_DIR": str(data_dir),
        "PYTHONUNBUFFERED": "1",
        "LAUNCH_METRICS_BIND": "127.0.0.1:0",
        **(env or {}),
    }
    for name in unset:
        full_env.pop(name, None)
    log_path = log_path or data_dir / f"server-{port}.log"
    args = [*command, "serve", "--bind", f"127.0.0.1:{port}"]
    if ray_address:
        args += ["--ray-address", ray_address]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(args, env=full_env, stdout=log, stderr=subprocess.STDOUT, cwd=str(cwd or data_dir))
    server = LaunchServer(proc, port, data_dir, full_env, log_path, stop_timeout)
    try:
        wait_ready(server, wait, time.monotonic() + timeout, poll_s)
    except Exception as exc:
        server.stop()
        tail = log_tail(log_path, LOG_TAIL_LINES)
        raise ServerStartError(f"launch-server did not start ({exc}):\n{tail}") from None
    return server


def wait_ready(server: LaunchServer, wait: Wait, deadline: float, poll_s: float) -> None:
    """Waits for the port, then (unless `wait` is "port") for the health check named by `wait`."""
    wait_for_port(server.port, timeout=max(0.0, deadline - time.monotonic()), proc=server.proc)
    if wait == "port":
        return
    service = SERVING_LAYER_SERVICE if wait == "serving_layer" else ""
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"exited with {server.proc.returncode}")
        if health_status(server.address, service) == health_pb2.HealthCheckResponse.SERVING:
            return
        time.sleep(poll_s)
    raise TimeoutError(f"{service or 'the server'} not SERVING at {server.address}")
