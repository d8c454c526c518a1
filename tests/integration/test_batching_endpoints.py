"""Dynamic batching on real endpoints (issue #14): a bundle's @launch.batched predict function
gets the requests its worker holds at once, from every path — sync predicts on the direct route
and through the server, async tasks, batch jobs — and an endpoint's own batch limits replace the
decorator's without a new bundle. Real server, real Ray cluster, real replicas; SQLite.

The batch function answers each input with the size of the batch it came in, so the client sees
how requests were grouped; a gate file lets a test hold one batch while others arrive."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import launch
import pytest

from tests.integration.test_batch_jobs import wait_job
from tests.integration.test_direct_route import wait_route
from tests.integration.test_endpoints import ENV, SMALL, args, client_for, wait_for, wait_status
from tests.server_fixtures import serving_server_fixture
from tests.support import ServerHandle

server = serving_server_fixture("batching", "b{dir}")
ONE = {**SMALL, "min_workers": 1, "max_workers": 1}
# Requests sent while a gated batch runs, and how long they get to reach the replica.
WAITING = 5
SETTLE_S = 1.5


def make_batch_fn() -> Callable:
    @launch.batched(max_batch_size=4)
    def predict(inputs: list[dict]) -> list[dict]:
        import os
        import time as _t

        for item in inputs:
            gate = item.get("gate")
            while gate and not os.path.exists(gate):
                _t.sleep(0.01)
            if item.get("boom"):
                raise RuntimeError("the batch broke")
        if any(item.get("short") for item in inputs):
            return [{}] * (len(inputs) - 1)
        return [{"x": item.get("x", 0) * 2, "batch": len(inputs)} for item in inputs]

    return predict


def make_plain() -> Callable:
    def predict(x: int) -> int:
        return x

    return predict


@pytest.fixture(scope="module")
def bundles(server: ServerHandle) -> dict[str, launch.ModelBundle]:
    client = client_for(server)
    return {
        "batch": client.create_model_bundle("batch-fn", ENV, predict_fn_or_cls=make_batch_fn(), requirements=[]),
        "plain": client.create_model_bundle("plain-fn", ENV, predict_fn_or_cls=make_plain(), requirements=[]),
    }


@pytest.fixture(scope="module")
def endpoints(server: ServerHandle, bundles: dict[str, launch.ModelBundle]) -> Iterator[dict[str, launch.Endpoint]]:
    client = client_for(server)
    made = {
        "sync": client.create_model_endpoint("batched", bundles["batch"], **ONE, per_worker=16),
        "async": client.create_model_endpoint(
            "batched-async", bundles["batch"], **ONE, per_worker=16, endpoint_type="async"
        ),
    }
    for ep in made.values():
        wait_status(ep, "READY")
    wait_route(server, "batched")
    yield made
    for ep in made.values():
        client.delete_model_endpoint(ep)


def gated(tmp_path: Path, name: str) -> tuple[dict, Path]:
    gate = tmp_path / name
    return {"x": 1, "gate": str(gate)}, gate


def batches_while_held(ep: launch.SyncEndpoint, tmp_path: Path) -> list[dict]:
    """One request held at the gate, WAITING more sent meanwhile, then the gate opened: every
    answer, the held one first."""
    held, gate = gated(tmp_path, f"gate-{time.monotonic_ns()}")
    answers: dict[int, launch.EndpointResponse] = {}

    def send(index: int, request: dict) -> None:
        answers[index] = ep.predict(args(**request), timeout=60)

    threads = [threading.Thread(target=send, args=(0, held))]
    threads[0].start()
    time.sleep(SETTLE_S)  # the held batch runs
    for i in range(1, WAITING + 1):
        threads.append(threading.Thread(target=send, args=(i, {"x": i})))
        threads[-1].start()
    time.sleep(SETTLE_S)  # the others wait behind it
    gate.touch()
    for thread in threads:
        thread.join(60)
    assert all(answers[i].status == "SUCCESS" for i in answers), answers
    return [launch_result(answers[i]) for i in range(WAITING + 1)]


def launch_result(response: launch.EndpointResponse) -> dict:
    import json

    return json.loads(response.result)


def test_sync_requests_batch_on_the_direct_route(server: ServerHandle, endpoints, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ep = client_for(server).get_model_endpoint("batched")
    got = batches_while_held(ep, tmp_path)  # type: ignore[arg-type]
    assert got[0] == {"x": 2, "batch": 1}  # it found the function idle: it started alone, at once
    assert [r["x"] for r in got[1:]] == [2 * i for i in range(1, WAITING + 1)]
    # The five that waited went in as full batches of the decorator's max_batch_size=4.
    assert sorted(r["batch"] for r in got[1:]) == [1, 4, 4, 4, 4]


def test_sync_requests_batch_through_the_server(server: ServerHandle, endpoints, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client = launch.LaunchClient(api_key=server.key_for("alice"), endpoint=server.address, direct_route=False)
    got = batches_while_held(client.get_model_endpoint("batched"), tmp_path)  # type: ignore[arg-type]
    assert got[0]["batch"] == 1 and sorted(r["batch"] for r in got[1:]) == [1, 4, 4, 4, 4]


def test_async_tasks_batch(server: ServerHandle, endpoints, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ep = client_for(server).get_model_endpoint("batched-async")
    held, gate = gated(tmp_path, "async-gate")
    first = ep.predict(args(**held))  # type: ignore[union-attr]
    time.sleep(SETTLE_S)
    futures = [ep.predict(args(x=i)) for i in range(1, 9)]  # type: ignore[union-attr]
    time.sleep(SETTLE_S)
    gate.touch()
    responses = [f.get(timeout=60) for f in [first, *futures]]
    assert all(r.status == "SUCCESS" for r in responses), responses
    got = [launch_result(r) for r in responses]
    assert [r["x"] for r in got[1:]] == [2 * i for i in range(1, 9)]
    assert max(r["batch"] for r in got[1:]) == 4  # tasks that waited went in together


def test_batch_failures_on_a_real_endpoint(server: ServerHandle, endpoints) -> None:  # type: ignore[no-untyped-def]
    ep = client_for(server).get_model_endpoint("batched")
    broke = ep.predict(args(boom=True), timeout=60)  # type: ignore[union-attr]
    assert broke.status == "FAILURE" and "RuntimeError: the batch broke" in broke.traceback
    short = ep.predict(args(short=True), timeout=60)  # type: ignore[union-attr]
    assert short.status == "FAILURE" and "returned 0 results for 1 requests" in short.traceback
    pickled = ep.predict(launch.EndpointRequest(args={"x": 3}, return_pickled=True), timeout=60)  # type: ignore[union-attr]
    assert pickled.status == "SUCCESS" and pickled.result_url


def test_a_batch_job_goes_through_the_batch_function_in_slices(server: ServerHandle, bundles) -> None:  # type: ignore[no-untyped-def]
    client = client_for(server)
    job_id = client.batch_async_request(
        "batch-fn",
        inputs=[{"x": i} for i in range(30)],
        serialization_format="json",
        batch_task_options={"cpus": 1, "memory": "256Mi", "max_workers": 1, "pyspark_partition_size": 10},
    )
    response = wait_job(client, job_id)
    assert response["status"] == "SUCCESS", response
    results = client.load_batch_results(job_id)
    assert [r["result"]["x"] for r in results] == [2 * i for i in range(30)]
    # Chunks of 10 rows in slices of max_batch_size=4: 4, 4, 2 per chunk.
    assert [r["result"]["batch"] for r in results[:10]] == [4] * 8 + [2] * 2


def test_endpoint_limits_replace_the_decorators(server: ServerHandle, bundles, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client = client_for(server)
    ep = client.create_model_endpoint("tuned", bundles["batch"], **ONE, per_worker=16, max_batch_size=2)
    try:
        wait_status(ep, "READY")
        got = client.get_model_endpoint("tuned")
        assert (got.model_endpoint.max_batch_size, got.model_endpoint.max_batch_wait_ms) == (2, None)  # type: ignore[union-attr]
        wait_route(server, "tuned")
        batches = batches_while_held(got, tmp_path)  # type: ignore[arg-type]
        assert sorted(r["batch"] for r in batches[1:]) == [1, 2, 2, 2, 2]
        # Edited without a new bundle: the next workers batch by the new limit.
        client.edit_model_endpoint(model_endpoint="tuned", max_batch_size=3)
        wait_for(
            lambda: client.get_model_endpoint("tuned").model_endpoint.max_batch_size == 3,  # type: ignore[union-attr]
            30,
            "the edit",
        )
        wait_status(client.get_model_endpoint("tuned"), "READY")  # type: ignore[arg-type]
        wait_route(server, "tuned")
        batches = batches_while_held(client.get_model_endpoint("tuned"), tmp_path)  # type: ignore[arg-type]
        assert sorted(r["batch"] for r in batches[1:]) == [2, 2, 3, 3, 3]
    finally:
        client.delete_model_endpoint("tuned")


def test_limits_on_a_plain_function_fail_the_endpoint_clearly(server: ServerHandle, bundles) -> None:  # type: ignore[no-untyped-def]
    client = client_for(server)
    ep = client.create_model_endpoint("plain-limits", bundles["plain"], **ONE, max_batch_wait_ms=5)
    try:
        wait_status(ep, "UPDATE_FAILED", timeout=120)
        reason = client.get_model_endpoint("plain-limits").model_endpoint.status_reason  # type: ignore[union-attr]
        assert "not a batch function" in reason
    finally:
        client.delete_model_endpoint("plain-limits")
