"""Shared fixtures. Integration tests run against both backends the issue names: SQLite with
local storage, and the local PostgreSQL with a moto S3 server on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

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

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
for _name, _value in S3_ENV.items():  # the test process talks to the moto server too
    os.environ.setdefault(_name, _value)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = start_s3_server()
    yield server
    stop_process(server.proc)


BACKENDS = ["sqlite-local", "postgres-s3"]


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerHandle]:
    """A real launch-server process (no Ray) per module and backend."""
    data_dir: Path = tmp_path_factory.mktemp(f"server-{request.param}")
    if request.param == "sqlite-local":
        handle = start_server(data_dir)
    else:
        s3: S3Server = request.getfixturevalue("s3_server")
        url = create_pg_database()
        request.addfinalizer(lambda: drop_pg_database(url))
        prefix = f"s3://{s3.bucket}/{data_dir.name}"
        handle = start_server(
            data_dir,
            database_url=url,
            storage_url=prefix,
            extra_env={**S3_ENV, "LAUNCH_S3_ENDPOINT_URL": s3.endpoint_url},
        )
    handle.backend = request.param  # type: ignore[attr-defined]
    yield handle
    handle.stop()
