"""Test support: real launch-server processes on free ports, a real S3-protocol server (moto) on
loopback, and throwaway PostgreSQL databases on 127.0.0.1:5432."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("LAUNCH_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


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


def stop_process(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """Ends a process we started, by its id only (never by name)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class ServerHandle:
    """A launch-server process and what a test needs to talk to it."""

    proc: subprocess.Popen
    port: int
    data_dir: Path
    database_url: str
    env: dict[str, str]
    log_path: Path
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                str(BIN / "launch-server"),
                "--data-dir",
                str(self.data_dir),
                "--database-url",
                self.database_url,
                *args,
            ],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    def key_for(self, owner: str) -> str:
        """A key for the owner, created through the real key-management CLI."""
        if owner not in self.keys:
            self.keys[owner] = self.cli("keys", "create", "--owner", owner).stdout.strip()
        return self.keys[owner]

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.address)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Stops the server. Its Serve applications outlive it by design (the database is the
        source of truth and a restarted server adopts them), so on the shared test cluster they
        are deleted here, or the next module's replicas would find the nodes full."""
        stop_process(self.proc)
        ray_address = self.env.get("LAUNCH_RAY_ADDRESS")
        prefix = self.env.get("LAUNCH_SERVE_APP_PREFIX")
        if self.env.get("LAUNCH_SERVING") == "1" and ray_address and prefix:
            delete_serve_apps(ray_address, prefix)


def start_server(
    data_dir: Path,
    database_url: str | None = None,
    storage_url: str | None = None,
    extra_env: dict[str, str] | None = None,
    port: int | None = None,
) -> ServerHandle:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    database_url = database_url or f"sqlite:///{data_dir / 'launch.db'}"
    env = dict(os.environ)
    env.update(
        {
            "LAUNCH_DATA_DIR": str(data_dir),
            "LAUNCH_DATABASE_URL": database_url,
            "LAUNCH_AUTH_CACHE_SECONDS": "0",
            "LAUNCH_SERVING": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if storage_url:
        env["LAUNCH_STORAGE_URL"] = storage_url
    env.update(extra_env or {})
    log_path = data_dir / f"server-{port}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [str(BIN / "launch-server"), "serve", "--bind", f"127.0.0.1:{port}"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(data_dir),
        )
    try:
        wait_for_port(port, timeout=60, proc=proc)
    except Exception:
        stop_process(proc)
        raise RuntimeError(f"launch-server did not start:\n{log_path.read_text(errors='replace')}") from None
    return ServerHandle(proc=proc, port=port, data_dir=data_dir, database_url=database_url, env=env, log_path=log_path)


@dataclass
class S3Server:
    proc: subprocess.Popen
    endpoint_url: str
    bucket: str

    def client(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def start_s3_server() -> S3Server:
    """moto in server mode: a real S3 protocol endpoint on loopback."""
    port = free_port()
    env = {**os.environ, **S3_ENV}
    proc = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, timeout=30, proc=proc)
    server = S3Server(proc=proc, endpoint_url=f"http://127.0.0.1:{port}", bucket=f"launch-{uuid.uuid4().hex[:8]}")
    server.client().create_bucket(Bucket=server.bucket)
    return server


def create_pg_database() -> str:
    """A fresh database on the local PostgreSQL; returns its URL."""
    import psycopg

    name = f"launch_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_pg_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_DELETE_APPS = """
import sys, ray
from ray import serve
ray.init(address=sys.argv[1], log_to_driver=False)
for name in list(serve.status().applications):
    if name.startswith(sys.argv[2] + "-"):
        serve.delete(name)
"""


def delete_serve_apps(ray_address: str, prefix: str) -> None:
    """Deletes a server's Serve applications from the shared cluster (in a child process, so the
    test process never becomes a Ray driver)."""
    subprocess.run(
        [sys.executable, "-c", _DELETE_APPS, ray_address, prefix],
        capture_output=True,
        timeout=180,
        check=False,
        env={**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"},
    )


# ---- A private PostgreSQL server, for tests that stop and start it -----------------------------

PG_BIN = Path(os.environ.get("LAUNCH_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


@dataclass
class PrivatePostgres:
    """A PostgreSQL server of the test's own (its own data directory and loopback port), so a
    test can stop and restart it without touching the shared one on 5432."""

    data_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        command = [str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), *args]
        subprocess.run(_as_postgres(command), check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg_ctl("-o", options, "-l", str(self.data_dir / "server.log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stops it (mode fast: ends sessions and shuts down cleanly; immediate: like a crash)."""
        self._pg_ctl("-m", mode, "-w", "stop")

    def remove(self) -> None:
        """Stops it if running and deletes its files."""
        import shutil

        if (self.data_dir / "postmaster.pid").exists():
            self.stop("immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, commands run as the postgres user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def start_private_postgres() -> PrivatePostgres:
    """initdb into a fresh directory (outside pytest's root-only tmp tree, and owned by postgres
    when we are root) and start the server on a free loopback port."""
    import shutil
    import tempfile

    data_dir = Path(tempfile.mkdtemp(prefix="launch-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data_dir, "postgres", "postgres")
    initdb = [str(PG_BIN / "initdb"), "-D", str(data_dir), "-A", "trust", "-U", "postgres"]
    subprocess.run(_as_postgres(initdb), check=True, capture_output=True, timeout=120)
    server = PrivatePostgres(data_dir=data_dir, port=free_port())
    server.start()
    return server


def fresh_database_url(backend: str, tmp_path: Path, add_finalizer) -> str:  # type: ignore[no-untyped-def]
    """A migrated, empty database for repository tests: a SQLite file under tmp_path, or a
    throwaway PostgreSQL database dropped by the finalizer."""
    from launch_server.store.db import upgrade

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'launch.db'}"
    else:
        url = create_pg_database()
        add_finalizer(lambda: drop_pg_database(url))
    upgrade(url)
    return url
