"""Database outages: a launch-server on a PostgreSQL server of the test's own (stopped and started
again here, never the shared one) answers UNAVAILABLE while it is down or too slow, which the
SDK retries, and serves again once it is back. Last, the fault test: PostgreSQL restarted in the
middle of a stream of async submits, with every acknowledged task finishing."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator

import grpc
import launch
import psycopg
import pytest
from launch.model_endpoint import EndpointResponseFuture
from launch.v1 import inference_pb2 as ipb
from launch.v1 import model_bundle_pb2 as bpb
from launch.v1 import model_bundle_pb2_grpc as bgrpc
from launch.v1 import task_pb2 as tpb
from launch.v1 import task_pb2_grpc as tgrpc

from tests.constants import ENDPOINT_READY_S
from tests.integration.test_endpoints import ENV, SMALL, client_for, wait_status
from tests.server_fixtures import serving_env
from tests.support import PrivatePostgres, ServerHandle, start_private_postgres, start_server

CONNECT_TIMEOUT_S = 2
STATEMENT_TIMEOUT_S = 2


def bearer(server: ServerHandle, owner: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {server.key_for(owner)}"),)


def list_bundles(server: ServerHandle, owner: str = "alice", timeout: float = 30) -> bpb.ListModelBundlesResponse:
    with server.channel() as channel:
        return bgrpc.ModelBundleServiceStub(channel).ListModelBundles(
            bpb.ListModelBundlesRequest(), metadata=bearer(server, owner), timeout=timeout
        )


def rpc_error_of(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value  # type: ignore[return-value]


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    pg = start_private_postgres()
    yield pg
    pg.remove()


@pytest.fixture()
def running(postgres: PrivatePostgres) -> Iterator[PrivatePostgres]:
    """The private PostgreSQL, up again after the test whatever the test did to it."""
    yield postgres
    if not (postgres.data_dir / "postmaster.pid").exists():
        postgres.start()


@pytest.fixture(scope="module")
def pg_server(postgres: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """A server (serving off) on the private PostgreSQL. Keys are cached for an hour, so a key
    that was used once is checked from memory and a call reaches its handler's own queries."""
    env = {
        "LAUNCH_AUTH_CACHE_SECONDS": "3600",
        "LAUNCH_DB_CONNECT_TIMEOUT_S": str(CONNECT_TIMEOUT_S),
        "LAUNCH_DB_STATEMENT_TIMEOUT_S": str(STATEMENT_TIMEOUT_S),
    }
    handle = start_server(tmp_path_factory.mktemp("dbdown"), database_url=postgres.url, extra_env=env)
    yield handle
    handle.stop()


def test_database_down_answers_unavailable_then_serves_again(pg_server: ServerHandle, running: PrivatePostgres) -> None:
    list_bundles(pg_server, "alice")  # alice's key is now in the server's cache
    pg_server.key_for("bob")  # bob's exists but was never used: the server must ask the database
    running.stop("fast")

    # The deadline is just over the connect timeout: an answer in time, not a hung thread.
    for owner in ("alice", "bob"):
        error = rpc_error_of(lambda owner=owner: list_bundles(pg_server, owner, timeout=CONNECT_TIMEOUT_S + 5))
        assert error.code() == grpc.StatusCode.UNAVAILABLE, (owner, error.code(), error.details())
        assert "database unavailable" in error.details()
        assert "127.0.0.1" not in error.details()  # the database's address stays in the server log

    running.start()
    assert list_bundles(pg_server, "alice") is not None  # the pool replaced its dead connections
    assert list_bundles(pg_server, "bob") is not None


def test_statement_timeout_answers_unavailable(pg_server: ServerHandle, running: PrivatePostgres) -> None:
    list_bundles(pg_server, "alice")
    with psycopg.connect(running.url) as locker:  # holds the table locked past the statement timeout
        locker.execute("LOCK TABLE model_bundles IN ACCESS EXCLUSIVE MODE")
        error = rpc_error_of(lambda: list_bundles(pg_server, "alice", timeout=STATEMENT_TIMEOUT_S + 20))
        locker.rollback()
    assert error.code() == grpc.StatusCode.UNAVAILABLE, (error.code(), error.details())
    assert "statement timeout" in error.details()
    assert list_bundles(pg_server, "alice") is not None


def test_sdk_rides_out_a_database_restart(pg_server: ServerHandle, running: PrivatePostgres) -> None:
    client = client_for(pg_server)
    client.list_model_bundles()
    running.stop("fast")
    restart = threading.Timer(3.0, running.start)
    restart.start()
    try:
        assert client.list_model_bundles() == []  # UNAVAILABLE until the restart, then served
    finally:
        restart.join()


# ---- the fault test: PostgreSQL restarted in the middle of a stream of async submits ---------------


def make_double() -> Callable:
    def double(x: int) -> int:
        import time as _t

        _t.sleep(0.05)  # slower than the submits come: a queue is waiting when PostgreSQL stops
        return x * 2

    return double


@pytest.fixture(scope="module")
def serving_pg_server(
    postgres: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory, ray_cluster: str
) -> Iterator[ServerHandle]:
    """A serving server on the private PostgreSQL. Keys are checked against the database on every
    call (the test default), so every call meets the outage. A short lease lets a task whose
    outcome could not be written be run again soon."""
    env = {
        **serving_env(ray_cluster, f"dbf{os.getpid() % 100000}"),
        "LAUNCH_TASK_LEASE_S": "5",
        "LAUNCH_DB_CONNECT_TIMEOUT_S": str(CONNECT_TIMEOUT_S),
    }
    handle = start_server(tmp_path_factory.mktemp("dbfault"), database_url=postgres.url, extra_env=env)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def double_endpoint(serving_pg_server: ServerHandle) -> launch.AsyncEndpoint:
    client = client_for(serving_pg_server)
    bundle = client.create_model_bundle("double", ENV, predict_fn_or_cls=make_double(), requirements=[])
    ep = client.create_model_endpoint(
        "double-ep", bundle, **SMALL, min_workers=1, max_workers=1, per_worker=4, endpoint_type="async"
    )
    wait_status(ep, "READY", timeout=ENDPOINT_READY_S)
    return ep  # type: ignore[return-value]


class Submitter(threading.Thread):
    """Submits tasks steadily through the SDK until told to stop; keeps what each submit got."""

    def __init__(self, ep: launch.AsyncEndpoint, interval_s: float) -> None:
        super().__init__(daemon=True)
        self.ep = ep
        self.interval_s = interval_s
        self.stopping = threading.Event()
        self.acknowledged: list[tuple[int, EndpointResponseFuture]] = []
        self.failed: list[tuple[int, str]] = []

    def run(self) -> None:
        i = 0
        while not self.stopping.is_set():
            try:
                future = self.ep.predict(launch.EndpointRequest(args={"x": i}, return_pickled=False))
                self.acknowledged.append((i, future))
            except Exception as exc:  # noqa: BLE001 - counted and reported by the test
                self.failed.append((i, f"{type(exc).__name__}: {exc}"))
            i += 1
            time.sleep(self.interval_s)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("stop_mode", ["fast", "immediate"])
def test_postgres_restarted_mid_load_loses_no_task(
    serving_pg_server: ServerHandle,
    double_endpoint: launch.AsyncEndpoint,
    running: PrivatePostgres,
    stop_mode: str,
    record_property: Callable[[str, object], None],
) -> None:
    submitters = [Submitter(double_endpoint, interval_s=0.02) for _ in range(4)]
    for submitter in submitters:
        submitter.start()
    try:
        time.sleep(3.0)
        acknowledged_before = sum(len(s.acknowledged) for s in submitters)
        assert acknowledged_before >= 20, [s.failed[:3] for s in submitters]
        with psycopg.connect(running.url) as conn:
            unfinished = conn.execute("SELECT count(*) FROM tasks WHERE state IN ('PENDING', 'STARTED')").fetchone()

        running.stop(stop_mode)
        outage_started = time.monotonic()
        time.sleep(1.0)
        with serving_pg_server.channel() as channel:  # the server's own answer, no SDK retries
            error = rpc_error_of(
                lambda: tgrpc.TaskServiceStub(channel).CreateTask(
                    tpb.CreateTaskRequest(
                        request_id=f"raw-{stop_mode}",
                        endpoint_name="double-ep",
                        task=tpb.TaskSpec(input=ipb.RequestInput(args_json='{"x": -1}')),
                    ),
                    metadata=bearer(serving_pg_server, "alice"),
                    timeout=CONNECT_TIMEOUT_S + 5,
                )
            )
        assert error.code() == grpc.StatusCode.UNAVAILABLE, (error.code(), error.details())
        time.sleep(max(0.0, 5.0 - (time.monotonic() - outage_started)))
        running.start()

        time.sleep(3.0)  # load goes on after the restart
    finally:
        for submitter in submitters:
            submitter.stopping.set()
        for submitter in submitters:
            submitter.join(90)

    acknowledged = [item for s in submitters for item in s.acknowledged]
    failed = [item for s in submitters for item in s.failed]
    finished = 0
    lost: list[tuple[int, str]] = []
    deadline = time.monotonic() + 180  # for all of them: a stalled queue fails in bounded time
    for i, future in acknowledged:
        try:
            response = future.get(timeout=max(1.0, deadline - time.monotonic()))
        except Exception as exc:  # noqa: BLE001 - a lost task is reported below
            lost.append((i, f"{type(exc).__name__}: {exc}"))
            continue
        if response.status == "SUCCESS" and response.result == str(i * 2):
            finished += 1
        else:
            lost.append((i, f"{response.status}: {response.result} {response.traceback}"))
    counts = {
        "acknowledged": len(acknowledged),
        "acknowledged_before_outage": acknowledged_before,
        "unfinished_when_stopped": unfinished[0] if unfinished else None,
        "finished": finished,
        "lost": len(lost),
        "submits_failed": len(failed),
    }
    record_property("counts", counts)
    print(f"PostgreSQL stopped ({stop_mode}) for 5 s mid-load: {counts}")
    assert not lost, lost[:5]
    assert not failed, failed[:5]  # the SDK's retries got every submit through
    assert finished == len(acknowledged) > acknowledged_before
