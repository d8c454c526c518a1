"""Server fixtures: a launch-server per module on a chosen backend, and a factory for the modules
that need a server of their own settings joined to the session's Ray cluster, so each such module
states only what differs (one line) instead of repeating the start and stop."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import S3_ENV, S3Server, ServerHandle, create_pg_database, drop_pg_database, start_server

BACKENDS = ["sqlite-local", "postgres-s3"]

# Short scale-down delays and a fast reconcile loop: tests watch endpoints scale within seconds.
SERVING_ENV = {
    "LAUNCH_SERVING": "1",
    "LAUNCH_DOWNSCALE_DELAY_S": "2",
    "LAUNCH_DOWNSCALE_TO_ZERO_DELAY_S": "2",
    "LAUNCH_RECONCILE_INTERVAL_S": "0.5",
}


def serving_env(ray_address: str, prefix: str) -> dict[str, str]:
    return {**SERVING_ENV, "LAUNCH_RAY_ADDRESS": ray_address, "LAUNCH_SERVE_APP_PREFIX": prefix}


def start_on_backend(
    request: pytest.FixtureRequest, backend: str, data_dir: Path, extra_env: dict[str, str] | None = None
) -> ServerHandle:
    """A server on one of BACKENDS: SQLite with local storage, or a throwaway PostgreSQL database
    (dropped when the fixture ends) with the session's moto S3 server."""
    if backend == "sqlite-local":
        handle = start_server(data_dir, extra_env=extra_env)
    else:
        s3: S3Server = request.getfixturevalue("s3_server")
        url = create_pg_database()
        request.addfinalizer(lambda: drop_pg_database(url))
        handle = start_server(
            data_dir,
            database_url=url,
            storage_url=f"s3://{s3.bucket}/{data_dir.name}",
            extra_env={**(extra_env or {}), **S3_ENV, "LAUNCH_S3_ENDPOINT_URL": s3.endpoint_url},
        )
    handle.backend = backend
    return handle


def app_prefix(template: str, data_dir: Path) -> str:
    """A Serve application prefix unique on the shared cluster: `template` with {dir} (the end of
    the module's data directory name) or {pid} (this test process) filled in."""
    return template.format(dir=data_dir.name[-6:], pid=os.getpid() % 100000)


def serving_server_fixture(data_dir_name: str, prefix: str, **extra_env: str) -> Callable[..., Iterator[ServerHandle]]:
    """A module-scoped `server` fixture: a SQLite launch-server with its serving layer, joined to
    the session's `ray_cluster` under the Serve application prefix `prefix` (see app_prefix), with
    `extra_env` on top of SERVING_ENV. A module assigns it: `server = serving_server_fixture(...)`."""

    @pytest.fixture(scope="module")
    def server(tmp_path_factory: pytest.TempPathFactory, ray_cluster: str) -> Iterator[ServerHandle]:
        data_dir = tmp_path_factory.mktemp(data_dir_name)
        env = {**serving_env(ray_cluster, app_prefix(prefix, data_dir)), **extra_env}
        handle = start_server(data_dir, extra_env=env)
        yield handle
        handle.stop()

    return server
