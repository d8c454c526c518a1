"""Prometheus metrics from a real server (issue: observability): replicas on both nodes of the
session's two-node cluster report their figures through the GCS, the server's metrics port serves
them labelled by endpoint and owner beside its own RPC counts, and a real Prometheus scraping that
port answers PromQL with the counts these tests produced. Real server, Ray cluster, replicas."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import launch
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_direct_route import wait_route
from tests.integration.test_endpoints import ENV, SMALL, args, client_for, make_echo, wait_for, wait_status
from tests.observability import KIND_VALUES, OUTCOME_VALUES, PATH_VALUES
from tests.prometheus import Prometheus, start_prometheus
from tests.server_fixtures import serving_server_fixture
from tests.server_process import free_port
from tests.support import ServerHandle

METRICS_PORT = free_port()
# Tasks are claimed four at a time, so a burst of them queues visibly (test_queued_tasks_...).
server = serving_server_fixture(
    "metrics", "m{dir}", LAUNCH_METRICS_BIND=f"127.0.0.1:{METRICS_PORT}", LAUNCH_TASK_GROUP_MAX="4"
)
ONE = {**SMALL, "min_workers": 1, "max_workers": 1}
SYNC_OK, SYNC_FAILED, TASKS, ON_GPU_NODE = 7, 2, 3, 4


def make_picky():  # type: ignore[no-untyped-def]
    def predict(x: int, wait: float = 0.0) -> dict:
        import time

        if x < 0:
            raise ValueError("negative")
        time.sleep(wait)
        return {"x": x}

    return predict


def scrape() -> dict[str, list]:
    """The metrics port's samples by metric family name."""
    with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def sample(name: str, **labels: str) -> float:
    """The sum of the samples of `name` with these labels' values (0 when there is none)."""
    family = name.removesuffix("_total").removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")
    return sum(
        s.value
        for s in scrape().get(family, [])
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


@pytest.fixture(scope="module")
def traffic(server: ServerHandle) -> Iterator[dict[str, launch.Endpoint]]:
    """alice's sync endpoint (head node), async endpoint, and an endpoint on the GPU node; bob's
    endpoint; then the requests whose counts the tests look for."""
    alice, bob = client_for(server), client_for(server, "bob")
    picky = alice.create_model_bundle("picky", ENV, predict_fn_or_cls=make_picky(), requirements=[])
    made = {
        "sync": alice.create_model_endpoint("metered", picky, **ONE, per_worker=4),
        "async": alice.create_model_endpoint("metered-async", picky, **ONE, endpoint_type="async"),
        "gpu": alice.create_model_endpoint(
            "metered-gpu", picky, **ONE, gpus=1, gpu_type="nvidia-tesla-t4", endpoint_type="sync"
        ),
        "bob": bob.create_model_endpoint(
            "bobs", bob.create_model_bundle("echo", ENV, predict_fn_or_cls=make_echo(), requirements=[]), **ONE
        ),
    }
    for ep in made.values():
        wait_status(ep, "READY", timeout=120)
    wait_route(server, "metered")
    for i in range(SYNC_OK):
        assert made["sync"].predict(args(x=i)).status == "SUCCESS"
    for _ in range(SYNC_FAILED):
        assert made["sync"].predict(args(x=-1)).status == "FAILURE"
    futures = [made["async"].predict(args(x=i)) for i in range(TASKS)]
    assert [f.get(timeout=60).status for f in futures] == ["SUCCESS"] * TASKS
    for i in range(ON_GPU_NODE):
        assert made["gpu"].predict(args(x=i)).status == "SUCCESS"
    yield made
    for name, ep in made.items():
        (bob if name == "bob" else alice).delete_model_endpoint(ep.model_endpoint.name)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, traffic: dict) -> Iterator[Prometheus]:
    instance = start_prometheus(tmp_path_factory.mktemp("prometheus"), [f"127.0.0.1:{METRICS_PORT}"])
    yield instance
    instance.stop()


def requests_of(endpoint: str, **labels: str) -> float:
    return sample("launch_requests_total", endpoint=endpoint, owner="alice", **labels)


def test_the_replicas_counts_reach_the_metrics_port(traffic: dict) -> None:
    wait_for(lambda: requests_of("metered", kind="sync", outcome="success") == SYNC_OK, 20, "sync successes")
    assert requests_of("metered", kind="sync", path="direct", outcome="failure") == SYNC_FAILED
    wait_for(lambda: requests_of("metered-async", kind="async_task", outcome="success") == TASKS, 20, "tasks")
    durations = sample("launch_request_duration_seconds_count", endpoint="metered", kind="sync", path="direct")
    assert durations == SYNC_OK + SYNC_FAILED
    assert sample("launch_predict_call_seconds_count", endpoint="metered") == SYNC_OK + SYNC_FAILED
    assert sample("launch_request_queue_wait_seconds_count", endpoint="metered") == SYNC_OK + SYNC_FAILED
    assert sample("launch_replica_cold_start_seconds_count", endpoint="metered", phase="load") == 1
    assert sample("launch_workers", endpoint="metered", state="running") == 1
    assert sample("launch_requests_in_flight", endpoint="metered") == 0


def test_the_autoscalers_desired_workers_reach_the_metrics_port(traffic: dict) -> None:
    """Written by the autoscaling policy inside Serve's controller, read through the GCS."""
    wait_for(lambda: sample("launch_workers_desired", endpoint="metered") == 1, 30, "desired workers")
    assert sample("launch_workers_desired", endpoint="bobs", owner="bob") == 1


def test_a_replica_on_the_second_node_is_counted(traffic: dict) -> None:
    wait_for(lambda: requests_of("metered-gpu", outcome="success") == ON_GPU_NODE, 20, "GPU-node requests")


def test_owners_and_label_values_are_the_endpoints_own(traffic: dict) -> None:
    wait_for(lambda: sample("launch_workers", endpoint="bobs", owner="bob", state="running") == 1, 20, "bob's")
    samples = scrape()["launch_requests"]
    assert {s.labels["owner"] for s in samples} <= {"alice", "bob"}
    assert {s.labels["kind"] for s in samples} <= KIND_VALUES
    assert {s.labels["path"] for s in samples} <= PATH_VALUES
    assert {s.labels["outcome"] for s in samples} <= OUTCOME_VALUES
    assert not any(s.labels["owner"] == "bob" and s.labels["endpoint"].startswith("metered") for s in samples)


def test_server_rpcs_are_counted_by_method_and_code(server: ServerHandle, traffic: dict) -> None:
    created = sample(
        "launch_server_rpcs_total", method="/launch.v1.ModelEndpointService/CreateModelEndpoint", code="OK"
    )
    assert created >= len(traffic)
    bad = launch.LaunchClient(api_key="not-a-key", endpoint=server.address)
    with pytest.raises(Exception):  # noqa: B017 - the SDK's own error type for UNAUTHENTICATED
        bad.list_model_endpoints()
    wait_for(
        lambda: (
            sample(
                "launch_server_rpcs_total",
                method="/launch.v1.ModelEndpointService/ListModelEndpoints",
                code="UNAUTHENTICATED",
            )
            >= 1
        ),
        10,
        "the refused call",
    )
    assert sample("launch_bundle_upload_bytes_total", owner="alice") > 0  # the pickled bundle


def test_prometheus_scrapes_the_counts(prometheus: Prometheus) -> None:
    prometheus.wait_value('sum(launch_requests_total{endpoint="metered",outcome="success"})', SYNC_OK)
    prometheus.wait_value('sum(launch_requests_total{endpoint="metered-gpu",owner="alice"})', ON_GPU_NODE)
    prometheus.wait_value('sum(launch_requests_total{endpoint="metered-async",kind="async_task"})', TASKS)
    prometheus.wait_value('launch_workers{endpoint="bobs",owner="bob",state="running"}', 1)
    assert prometheus.value('up{job="launch"}') == 1


def test_an_owner_sees_live_figures_of_their_own_endpoints_only(server: ServerHandle, traffic: dict) -> None:
    """GetModelEndpointStats through the SDK: the counts the tests above produced, rates over the
    window, workers; bob's endpoint never appears to alice, nor hers to him."""
    alice, bob = client_for(server), client_for(server, "bob")
    wait_for(
        lambda: {s.name: s.requests_total for s in alice.get_endpoint_stats()}.get("metered") == SYNC_OK + SYNC_FAILED,
        20,
        "the sync endpoint's totals",
    )
    mine = {s.name: s for s in alice.get_endpoint_stats()}
    assert set(mine) == {"metered", "metered-async", "metered-gpu"}
    metered = mine["metered"]
    assert (metered.failures_total, metered.endpoint_type, metered.status) == (SYNC_FAILED, "sync", "READY")
    assert (metered.workers_running, metered.workers_desired, metered.min_workers, metered.max_workers) == (1, 1, 1, 1)
    assert mine["metered-async"].requests_total >= TASKS
    assert [s.name for s in bob.get_endpoint_stats()] == ["bobs"]
    with pytest.raises(launch.NotFoundError):
        bob.get_endpoint_stats(["metered"])
    with pytest.raises(launch.NotFoundError):
        alice.get_endpoint_stats(["bobs"])
    for _ in range(20):  # a burst: the window's rate and latency
        assert traffic["sync"].predict(args(x=1, wait=0.01)).status == "SUCCESS"

    def busy() -> launch.EndpointStats | None:
        (stats,) = alice.get_endpoint_stats(["metered"], window_seconds=30)
        return stats if stats.requests_per_second > 0 and stats.p50_seconds >= 0.01 else None

    stats = wait_for(busy, 20, "a rate over the window")
    assert stats.p99_seconds >= stats.p50_seconds
    assert stats.errors_per_second * stats.window_seconds <= SYNC_FAILED + 1e-6  # the burst had none
    assert 0 < stats.window_seconds <= 30


def test_stats_refuses_bad_windows_and_too_many_names(server: ServerHandle, traffic: dict) -> None:
    import grpc
    from launch.v1 import model_endpoint_pb2 as epb
    from launch.v1 import model_endpoint_pb2_grpc as egrpc

    with grpc.insecure_channel(server.address) as channel:
        stub = egrpc.ModelEndpointServiceStub(channel)
        metadata = (("authorization", f"Bearer {server.key_for('alice')}"),)
        bad = [
            (epb.GetModelEndpointStatsRequest(window_seconds=-1), "window_seconds"),
            (epb.GetModelEndpointStatsRequest(window_seconds=61), "window_seconds"),
            (epb.GetModelEndpointStatsRequest(window_seconds=float("nan")), "window_seconds"),
            (epb.GetModelEndpointStatsRequest(names=[f"e{i}" for i in range(101)]), "names"),
            (epb.GetModelEndpointStatsRequest(names=["Not A Name!"]), "names"),
        ]
        for request, field in bad:
            with pytest.raises(grpc.RpcError) as raised:
                stub.GetModelEndpointStats(request, metadata=metadata, timeout=10)
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field in raised.value.details()


def test_the_cli_shows_them_once_and_live(server: ServerHandle, traffic: dict, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from click.testing import CliRunner
    from launch.cli.main import cli

    env = {
        "LAUNCH_API_KEY": server.key_for("alice"),
        "LAUNCH_ENDPOINT": server.address,
        "LAUNCH_CONFIG": str(tmp_path / "absent.json"),
    }
    result = CliRunner().invoke(cli, ["-o", "json", "endpoints", "stats", "metered"], env=env)
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["name"] == "metered" and row["requests_total"] >= SYNC_OK + SYNC_FAILED
    assert {"requests_per_second", "p50_seconds", "p99_seconds", "in_flight", "tasks_queued"} <= set(row)
    result = CliRunner().invoke(cli, ["endpoints", "top", "--iterations", "2", "--interval", "0.5"], env=env)
    assert result.exit_code == 0, result.output
    assert "metered-async" in result.stdout and "REQ/S" in result.stdout and "bobs" not in result.stdout
    result = CliRunner().invoke(cli, ["endpoints", "stats", "nope"], env=env)
    assert result.exit_code == 1 and "not found" in result.stderr


def test_queued_tasks_and_the_oldest_ones_age(traffic: dict) -> None:
    """Runs last: its tasks add to the async endpoint's counts the tests above compare."""
    assert sample("launch_tasks_queued", endpoint="metered-async") == 0
    assert sample("launch_tasks_oldest_queued_age_seconds", endpoint="metered-async") == 0
    futures = [traffic["async"].predict(args(x=i, wait=0.4)) for i in range(40)]  # one worker: ~16 s
    wait_for(lambda: sample("launch_tasks_queued", endpoint="metered-async") >= 5, 20, "a queue")
    wait_for(lambda: sample("launch_tasks_oldest_queued_age_seconds", endpoint="metered-async") > 1, 20, "its age")
    queued_of = {s.labels["endpoint"] for s in scrape()["launch_tasks_queued"]}
    assert "metered-async" in queued_of and "metered" not in queued_of  # async endpoints only
    assert [f.get(timeout=120).status for f in futures] == ["SUCCESS"] * len(futures)
    wait_for(lambda: sample("launch_tasks_queued", endpoint="metered-async") == 0, 20, "the queue drained")
    assert sample("launch_tasks_oldest_queued_age_seconds", endpoint="metered-async") == 0
