"""Test support: real launch-server processes on free ports, a real S3-protocol server (moto) on
loopback, and throwaway PostgreSQL databases on 127.0.0.1:5432."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field, fields
from pathlib import Path

import grpc

from tests.constants import SERVER_START_S
from tests.server_process import (
    BIN,
    SERVER_COMMAND,
    LaunchServer,
    Wait,
    free_port,
    start_launch_server,
    wait_for_port,
)
from tests.server_process import pids_with_env as pids_with_env  # re-exported for tests
from tests.server_process import stop_process as stop_process  # re-exported for tests

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("LAUNCH_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass
class ServerHandle(LaunchServer):
    """A launch-server process and what a test needs to talk to it: its database, the keys made
    for it, the backend it runs on and the extra environment it was started with (a restart in a
    test reuses it)."""

    database_url: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)
    backend: str = ""
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def ray_address(self) -> str | None:
        return self.env.get("LAUNCH_RAY_ADDRESS")

    @property
    def prefix(self) -> str | None:
        """Its Serve application prefix: each application is named <prefix>-<endpoint id>."""
        return self.env.get("LAUNCH_SERVE_APP_PREFIX")

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                *SERVER_COMMAND,
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

    def stop(self) -> None:
        """Stops the server. Its Serve applications outlive it by design (the database is the
        source of truth and a restarted server adopts them), so on the shared test cluster they
        are deleted here, or the next module's replicas would find the nodes full."""
        super().stop()
        if self.env.get("LAUNCH_SERVING") == "1" and self.ray_address and self.prefix:
            delete_serve_apps(self.ray_address, self.prefix)


def start_server(
    data_dir: Path,
    database_url: str | None = None,
    storage_url: str | None = None,
    extra_env: dict[str, str] | None = None,
    port: int | None = None,
    wait: Wait = "port",
    poll_s: float = 0.05,
) -> ServerHandle:
    """A launch-server for a test: SQLite in data_dir unless `database_url`, no serving layer and
    no auth cache unless `extra_env` says otherwise (so a revoked key is refused at once)."""
    database_url = database_url or f"sqlite:///{data_dir / 'launch.db'}"
    env = {
        "LAUNCH_DATABASE_URL": database_url,
        "LAUNCH_AUTH_CACHE_SECONDS": "0",
        "LAUNCH_SERVING": "0",
    }
    if storage_url:
        env["LAUNCH_STORAGE_URL"] = storage_url
    env.update(extra_env or {})
    process = start_launch_server(data_dir, env, port=port, wait=wait, timeout=SERVER_START_S, poll_s=poll_s)
    started = {f.name: getattr(process, f.name) for f in fields(LaunchServer)}
    return ServerHandle(**started, database_url=database_url, extra_env=dict(extra_env or {}))


@dataclass
class S3Server:
    proc: subprocess.Popen
    endpoint_url: str
    bucket: str
    log_path: Path | None = None

    def log_tail(self, lines: int = 60) -> str:
        """The end of moto's output, for a failure message."""
        if self.log_path is None or not self.log_path.exists():
            return "(no moto log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def client(self):  # type: ignore[no-untyped-def]
        """A client that retries harder than the default: moto answers 500 now and then when the
        machine is loaded, and its log (log_path) says why."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"mode": "standard", "max_attempts": 8}),
        )


S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def start_s3_server(log_path: Path | None = None) -> S3Server:
    """moto in server mode: a real S3 protocol endpoint on loopback. Its output goes to log_path
    when given, so that a 500 it answers can be traced to moto's own traceback."""
    port = free_port()
    env = {**os.environ, **S3_ENV}
    with open(log_path or os.devnull, "ab") as log:
        proc = subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    wait_for_port(port, timeout=30, proc=proc)
    bucket = f"launch-{uuid.uuid4().hex[:8]}"
    server = S3Server(proc=proc, endpoint_url=f"http://127.0.0.1:{port}", bucket=bucket, log_path=log_path)
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
