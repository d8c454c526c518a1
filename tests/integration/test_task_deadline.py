"""An async task's execution deadline (the endpoint's task_timeout_seconds) and CancelTask of a
running task, against a real server with serving (SQLite+local and PostgreSQL+S3): the task's
code is stopped on the replica, its stored state says why, and the endpoint's only worker slot
serves the next task."""

from __future__ import annotations

import os
import time
from pathlib import Path

import grpc
import launch
import pytest
from launch.v1 import inference_pb2 as ipb
from launch.v1 import task_pb2 as tpb

from tests.integration.test_async import auth, stub
from tests.integration.test_endpoints import ENV, SMALL, client_for, wait_for, wait_status
from tests.server_fixtures import serving_env
from tests.support import ServerHandle, create_pg_database, drop_pg_database, start_server


def make_spin():  # type: ignore[no-untyped-def]
    """A predict function (defined here so the bundle pickles it by value) that counts in
    `marker` every 50 ms until `seconds` pass: stoppable between two sleeps."""

    def spin(marker: str, seconds: float = 3600.0) -> dict:
        import pathlib
        import time as _t

        path = pathlib.Path(marker)
        end = _t.monotonic() + seconds
        count = 0
        while _t.monotonic() < end:
            count += 1
            path.write_text(str(count))
            _t.sleep(0.05)
        return {"count": count}

    return spin


def spin_request(marker: Path, seconds: float = 3600.0) -> launch.EndpointRequest:
    return launch.EndpointRequest(args={"marker": str(marker), "seconds": seconds}, return_pickled=False)


def count_of(marker: Path) -> int:
    text = marker.read_text() if marker.exists() else ""
    return int(text) if text else 0


def assert_stopped(marker: Path) -> None:
    """The user code no longer counts: the count stays put over many of its 50 ms steps."""
    wait_for(lambda: _unchanged_over(marker, 0.5), timeout=10, what=f"{marker} to stop growing")
    assert _unchanged_over(marker, 1.0)


def _unchanged_over(marker: Path, seconds: float) -> bool:
    before = count_of(marker)
    time.sleep(seconds)
    return count_of(marker) == before


@pytest.fixture(scope="module")
def timed_ep(serving_server: ServerHandle) -> launch.AsyncEndpoint:
    """One worker, one call at a time, tasks stopped after 2 s."""
    client = client_for(serving_server)
    bundle = client.create_model_bundle("spin", ENV, predict_fn_or_cls=make_spin(), requirements=[])
    ep = client.create_model_endpoint(
        "timed-ep", bundle, **SMALL, min_workers=1, max_workers=1, per_worker=1, endpoint_type="async",
        task_timeout_seconds=2,
    )  # fmt: skip
    assert ep.model_endpoint.task_timeout_seconds == 2
    wait_status(ep, "READY")
    return ep


@pytest.fixture(scope="module")
def cancel_ep(serving_server: ServerHandle) -> launch.AsyncEndpoint:
    """One worker, one call at a time, the default task timeout (an hour)."""
    client = client_for(serving_server)
    bundle = client.create_model_bundle("spin-cancel", ENV, predict_fn_or_cls=make_spin(), requirements=[])
    ep = client.create_model_endpoint(
        "cancel-ep", bundle, **SMALL, min_workers=1, max_workers=1, per_worker=1, endpoint_type="async"
    )
    assert ep.model_endpoint.task_timeout_seconds == 3600
    wait_status(ep, "READY")
    return ep


def test_a_task_past_its_timeout_fails_and_frees_its_slot(timed_ep, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "hung"
    response = timed_ep.predict(spin_request(marker)).get(timeout=60)
    assert response.status == "FAILURE"
    assert "task exceeded its endpoint's task_timeout_seconds=2" in (response.traceback or "")
    assert count_of(marker) > 0  # it ran ...
    assert_stopped(marker)  # ... and its code was stopped
    # The endpoint's only slot (one worker, per_worker=1) serves the next task.
    quick = timed_ep.predict(spin_request(tmp_path / "quick", seconds=0.1)).get(timeout=60)
    assert quick.status == "SUCCESS", quick.traceback


def test_grouped_tasks_each_get_their_own_timeout(serving_server: ServerHandle, timed_ep, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """More tasks than call slots go in one Serve handle call (predict_many): each is stopped on
    its own clock, and a quick one among them still succeeds."""
    markers = [tmp_path / f"g{i}" for i in range(3)]
    requests = [spin_request(markers[0]), spin_request(markers[1], seconds=0.1), spin_request(markers[2])]
    for index, request in enumerate(requests):
        request.request_id = str(index)
    batch = timed_ep.predict_batch(requests)
    wait_for(lambda: batch.is_done(poll=True), timeout=90, what="the batch to finish")
    responses = batch.get_responses()
    states = [responses[str(i)].status for i in range(3)]
    assert states == ["FAILURE", "SUCCESS", "FAILURE"], [responses[str(i)].traceback for i in range(3)]
    for i in (0, 2):
        assert "task_timeout_seconds=2" in (responses[str(i)].traceback or "")
        assert_stopped(markers[i])


def test_cancelling_a_running_task_stops_its_code(serving_server: ServerHandle, cancel_ep, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client = client_for(serving_server)
    marker = tmp_path / "cancelled"
    future = cancel_ep.predict(spin_request(marker))
    task_id = future.async_task_id
    wait_for(lambda: count_of(marker) > 2, timeout=60, what="the task to run")
    tasks = stub(serving_server)
    cancelled = tasks.CancelTask(tpb.CancelTaskRequest(task_id=task_id), metadata=auth(serving_server)).task
    assert cancelled.state == ipb.RESULT_STATE_CANCELLED
    assert_stopped(marker)
    # The slot is free: the next task runs on the endpoint's only worker ...
    quick = cancel_ep.predict(spin_request(tmp_path / "after", seconds=0.1)).get(timeout=60)
    assert quick.status == "SUCCESS", quick.traceback
    # ... and the cancelled task's late answer (if any) was dropped.
    assert client.get_async_response(task_id)["state"] == "CANCELLED"
    # Cancelling again, or a finished task, answers the stored state; an unknown id is NOT_FOUND.
    again = tasks.CancelTask(tpb.CancelTaskRequest(task_id=task_id), metadata=auth(serving_server)).task
    assert again.state == ipb.RESULT_STATE_CANCELLED
    with pytest.raises(grpc.RpcError) as err:
        tasks.CancelTask(tpb.CancelTaskRequest(task_id="0" * 32), metadata=auth(serving_server))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_task_timeout_is_validated_and_editable(serving_server: ServerHandle, cancel_ep) -> None:  # type: ignore[no-untyped-def]
    client = client_for(serving_server)
    for bad in (0, -1, 7 * 86400 + 1):
        with pytest.raises(launch.InvalidArgumentError) as err:
            client.edit_model_endpoint(cancel_ep, task_timeout_seconds=bad)
        assert err.value.field == "endpoint.task_timeout_seconds", bad
    with pytest.raises(launch.InvalidArgumentError) as err:
        client.create_model_endpoint("bad-timeout", "spin", **SMALL, endpoint_type="async", task_timeout_seconds=0)
    assert err.value.field == "endpoint.task_timeout_seconds"
    edited = client.edit_model_endpoint(cancel_ep, task_timeout_seconds=7 * 86400)
    assert edited.model_endpoint.task_timeout_seconds == 7 * 86400
    assert client.get_model_endpoint("cancel-ep").model_endpoint.task_timeout_seconds == 7 * 86400


def test_a_cancel_through_another_server_stops_the_task_where_it_runs(
    tmp_path_factory: pytest.TempPathFactory, ray_cluster: str, tmp_path: Path
) -> None:
    """Two servers share one PostgreSQL: a task submitted (and run) through A, cancelled through
    B, is stopped by A at its next lease renewal (a 3 s lease: renewed every second)."""
    url = create_pg_database()
    storage = tmp_path_factory.mktemp("deadline-storage")
    env = {**serving_env(ray_cluster, f"dl{os.getpid() % 100000}"), "LAUNCH_TASK_LEASE_S": "3"}
    servers: list[ServerHandle] = []
    try:
        for name in ("dl-a", "dl-b"):
            servers.append(
                start_server(
                    tmp_path_factory.mktemp(name), database_url=url, storage_url=storage.as_uri(), extra_env=env
                )
            )
        a, b = servers
        client_a = client_for(a)
        bundle = client_a.create_model_bundle("spin", ENV, predict_fn_or_cls=make_spin(), requirements=[])
        ep = client_a.create_model_endpoint(
            "shared-cancel-ep", bundle, **SMALL, min_workers=1, max_workers=1, per_worker=1, endpoint_type="async"
        )
        wait_status(ep, "READY")
        marker = tmp_path / "shared"
        task_id = ep.predict(spin_request(marker)).async_task_id
        wait_for(lambda: count_of(marker) > 2, timeout=60, what="the task to run")
        cancelled = stub(b).CancelTask(tpb.CancelTaskRequest(task_id=task_id), metadata=auth(b)).task
        assert cancelled.state == ipb.RESULT_STATE_CANCELLED
        assert_stopped(marker)
        quick = ep.predict(spin_request(tmp_path / "after-shared", seconds=0.1)).get(timeout=60)
        assert quick.status == "SUCCESS", quick.traceback
        assert client_a.get_async_response(task_id)["state"] == "CANCELLED"
        client_a.delete_model_endpoint("shared-cancel-ep")
        wait_for(lambda: client_for(b).get_model_endpoint("shared-cancel-ep") is None, 90, "the endpoint to go")
    finally:
        for handle in servers:
            handle.stop()
        drop_pg_database(url)
