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
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
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


# ---- Ray: one two-node loopback cluster for the whole session ----------------------------------


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A head node plus a second node that advertises one fake T4 GPU, all on 127.0.0.1.
    Servers join it with --ray-address; each uses its own Serve application prefix."""
    os.environ["RAY_TMPDIR"] = os.environ.get("RAY_TMPDIR") or str(tmp_path_factory.mktemp("ray"))
    os.environ["RAY_SERVE_THROUGHPUT_OPTIMIZED"] = "1"
    os.environ["RAY_SERVE_ENABLE_DIRECT_INGRESS"] = "0"  # as the server sets for a local cluster
    os.environ["RAY_DISABLE_FAILURE_SIGNAL_HANDLER"] = "1"
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        connect=False,
        head_node_args={"num_cpus": 12, "include_dashboard": False},
    )
    cluster.add_node(num_cpus=2, num_gpus=1, resources={"accelerator_type:T4": 1})
    cluster.wait_for_nodes()
    yield cluster.address
    cluster.shutdown()


SERVING_ENV = {
    "LAUNCH_SERVING": "1",
    "LAUNCH_DOWNSCALE_DELAY_S": "2",
    "LAUNCH_DOWNSCALE_TO_ZERO_DELAY_S": "2",
    "LAUNCH_RECONCILE_INTERVAL_S": "0.5",
}


def serving_env(ray_address: str, prefix: str) -> dict[str, str]:
    return {**SERVING_ENV, "LAUNCH_RAY_ADDRESS": ray_address, "LAUNCH_SERVE_APP_PREFIX": prefix}


@pytest.fixture(scope="module", params=BACKENDS)
def serving_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, ray_cluster: str
) -> Iterator[ServerHandle]:
    """A real launch-server with its serving layer, joined to the session's Ray cluster."""
    data_dir: Path = tmp_path_factory.mktemp(f"serving-{request.param}")
    prefix = f"t{os.getpid() % 10000}-{data_dir.name[-12:].replace('_', '')}"
    env = serving_env(ray_cluster, prefix)
    if request.param == "sqlite-local":
        handle = start_server(data_dir, extra_env=env)
    else:
        s3: S3Server = request.getfixturevalue("s3_server")
        url = create_pg_database()
        request.addfinalizer(lambda: drop_pg_database(url))
        handle = start_server(
            data_dir,
            database_url=url,
            storage_url=f"s3://{s3.bucket}/{data_dir.name}",
            extra_env={**env, **S3_ENV, "LAUNCH_S3_ENDPOINT_URL": s3.endpoint_url},
        )
    handle.backend = request.param  # type: ignore[attr-defined]
    yield handle
    handle.stop()
