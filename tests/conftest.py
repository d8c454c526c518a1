"""Shared fixtures. Integration tests run against both backends the issue names: SQLite with
local storage, and the local PostgreSQL with a moto S3 server on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server_fixtures import BACKENDS, serving_env, start_on_backend
from tests.server_process import stop_process
from tests.support import S3_ENV, S3Server, ServerHandle, start_s3_server

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
for _name, _value in S3_ENV.items():  # the test process talks to the moto server too
    os.environ.setdefault(_name, _value)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_s3_server(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    stop_process(server.proc)


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """A real launch-server process (no Ray) per module and backend."""
    data_dir: Path = tmp_path_factory.mktemp(f"server-{request.param}")
    handle = start_on_backend(request, request.param, data_dir)
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


@pytest.fixture(scope="module", params=BACKENDS)
def serving_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, ray_cluster: str
) -> Iterator[ServerHandle]:
    """A real launch-server with its serving layer, joined to the session's Ray cluster."""
    data_dir: Path = tmp_path_factory.mktemp(f"serving-{request.param}")
    prefix = f"t{os.getpid() % 10000}-{data_dir.name[-12:].replace('_', '')}"
    handle = start_on_backend(request, request.param, data_dir, serving_env(ray_cluster, prefix))
    yield handle
    handle.stop()
