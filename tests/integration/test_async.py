"""Async endpoints end to end: durable tasks, results streamed back over WatchTasks, batches,
cancellation, expiry, backpressure and the errors a client can get, on SQLite+local and
PostgreSQL+S3 with the session's Ray cluster."""

from __future__ import annotations

import time

import grpc
import launch
import pytest
from launch.v1 import inference_pb2 as ipb
from launch.v1 import task_pb2 as tpb
from launch.v1 import task_pb2_grpc as tgrpc

from tests.integration.test_endpoints import ENV, SMALL, client_for, make_echo, wait_for, wait_status
from tests.support import ServerHandle


def req(**kw: object) -> launch.EndpointRequest:
    return launch.EndpointRequest(args=kw, return_pickled=False)


def stub(server: ServerHandle) -> tgrpc.TaskServiceStub:
    return tgrpc.TaskServiceStub(server.channel())


def auth(server: ServerHandle, owner: str = "alice") -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {server.key_for(owner)}"),)


@pytest.fixture(scope="module")
def async_ep(serving_server: ServerHandle) -> launch.AsyncEndpoint:
    client = client_for(serving_server)

    def work(x: object = None, sleep: float = 0.0, fail: bool = False, big: int = 0) -> object:
        import time as _t

        if sleep:
            _t.sleep(sleep)
        if fail:
            raise RuntimeError(f"failed on {x}")
        if big:
            return "x" * big
        return {"x": x}

    bundle = client.create_model_bundle("work", ENV, predict_fn_or_cls=work, requirements=[])
    ep = client.create_model_endpoint(
        "async-ep", bundle, **SMALL, min_workers=1, max_workers=2, per_worker=2, endpoint_type="async"
    )
    assert isinstance(ep, launch.AsyncEndpoint)
    wait_status(ep, "READY")
    return ep


@pytest.fixture(scope="module")
def parked_ep(serving_server: ServerHandle) -> launch.AsyncEndpoint:
    """An async endpoint that never serves (no node has an A100): its tasks stay queued."""
    client = client_for(serving_server)
    bundle = client.create_model_bundle("parked", ENV, predict_fn_or_cls=make_echo(), requirements=[])
    ep = client.create_model_endpoint(
        "parked-ep",
        bundle,
        **SMALL,
        gpus=1,
        gpu_type="nvidia-ampere-a100",
        endpoint_type="async",
        max_queue_size=5,
        task_expiry_seconds=3600,
    )
    wait_status(ep, "UPDATE_FAILED", timeout=30)
    return ep


def test_future_get_returns_the_result_from_the_watch_stream(async_ep) -> None:  # type: ignore[no-untyped-def]
    future = async_ep.predict(req(x=1))
    assert isinstance(future, launch.EndpointResponseFuture)
    response = future.get(timeout=60)
    assert (response.status, response.result) == ("SUCCESS", '{"x": 1}')
    pickled = async_ep.predict(launch.EndpointRequest(args={"x": [1, 2]}, return_pickled=True)).get(timeout=60)
    assert pickled.result_url and pickled.load_result() == {"x": [1, 2]}


def test_create_and_watch_task_streams_the_stored_task_then_its_result(serving_server: ServerHandle, async_ep) -> None:  # type: ignore[no-untyped-def]
    tasks = stub(serving_server)

    def create_and_watch(request_id: str, endpoint: str = "async-ep", args: str = '{"x": 7}', owner: str = "alice"):  # type: ignore[no-untyped-def]
        request = tpb.CreateAndWatchTaskRequest(
            request_id=request_id, endpoint_name=endpoint, task=tpb.TaskSpec(input=ipb.RequestInput(args_json=args))
        )
        return [m.task for m in tasks.CreateAndWatchTask(request, metadata=auth(serving_server, owner), timeout=60)]

    messages = create_and_watch("cw-1")
    first, last = messages[0], messages[-1]
    # Stored PENDING or STARTED and then finished; or, when its worker answered within the server's
    # hold, stored once already finished (test_async_hold.py pins down which happens when).
    assert first.state in (ipb.RESULT_STATE_PENDING, ipb.RESULT_STATE_STARTED) or messages == [first]
    assert {m.task_id for m in messages} == {first.task_id}
    assert last.state == ipb.RESULT_STATE_SUCCESS and last.result.result == '{"x": 7}'
    # The same request_id answers (and watches) the same task, already finished; it did not run again.
    again = create_and_watch("cw-1")
    assert [(m.task_id, m.state) for m in again] == [(first.task_id, ipb.RESULT_STATE_SUCCESS)]
    assert again[0].attempts == 1 and again[0].result.result == '{"x": 7}'
    stored = tasks.GetTask(tpb.GetTaskRequest(task_id=first.task_id), metadata=auth(serving_server)).task
    assert (stored.state, stored.attempts, stored.result.result) == (ipb.RESULT_STATE_SUCCESS, 1, '{"x": 7}')
    for kwargs, code in (
        ({"args": "[1]"}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"endpoint": "no-such-ep"}, grpc.StatusCode.NOT_FOUND),
        ({"owner": "bob"}, grpc.StatusCode.NOT_FOUND),
    ):
        with pytest.raises(grpc.RpcError) as err:
            create_and_watch("", **kwargs)
        assert err.value.code() == code, kwargs


def test_predict_returns_once_the_task_is_stored(serving_server: ServerHandle, async_ep) -> None:  # type: ignore[no-untyped-def]
    future = async_ep.predict(req(x=8, sleep=1))
    assert client_for(serving_server).get_async_response(future.async_task_id)["state"] in ("PENDING", "STARTED")
    assert future.get(timeout=60).result == '{"x": 8}'
    assert future.get(timeout=1).result == '{"x": 8}'  # a finished future answers again


def test_get_with_timeout_raises_timeout_error(async_ep) -> None:  # type: ignore[no-untyped-def]
    future = async_ep.predict(req(x=2, sleep=3))
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        future.get(timeout=0.5)
    assert time.monotonic() - started < 2.5
    assert future.get(timeout=60).result == '{"x": 2}'


def test_failure_carries_the_traceback(async_ep) -> None:  # type: ignore[no-untyped-def]
    response = async_ep.predict(req(x=3, fail=True)).get(timeout=60)
    assert response.status == "FAILURE" and "RuntimeError: failed on 3" in response.traceback


def test_predict_batch_watches_many_tasks_over_one_stream(async_ep) -> None:  # type: ignore[no-untyped-def]
    requests = [launch.EndpointRequest(args={"x": i}, request_id=f"r{i}", return_pickled=False) for i in range(300)]
    batch = async_ep.predict_batch(requests)
    assert isinstance(batch, launch.AsyncEndpointBatchResponse)
    wait_for(lambda: batch.is_done(poll=True), 120, "the batch to finish", interval=0.05)
    responses = batch.get_responses()
    assert set(responses) == {f"r{i}" for i in range(300)}
    assert all(responses[f"r{i}"].result == f'{{"x": {i}}}' for i in range(300))


def test_async_request_and_get_async_response(serving_server: ServerHandle, async_ep) -> None:  # type: ignore[no-untyped-def]
    client = client_for(serving_server)
    task_id = client.async_request("async-ep", args={"x": 5}, return_pickled=False)
    response = wait_for(
        lambda: (r := client.get_async_response(task_id))["state"] == "SUCCESS" and r, 60, "the task to finish"
    )
    assert response == {"state": "SUCCESS", "result": '{"x": 5}'}
    task = stub(serving_server).GetTask(tpb.GetTaskRequest(task_id=task_id), metadata=auth(serving_server)).task
    assert task.attempts == 1 and task.HasField("start_time") and task.HasField("end_time")
    assert task.end_time.ToDatetime() >= task.start_time.ToDatetime() >= task.create_time.ToDatetime()


def test_result_over_the_limit_is_failure(async_ep) -> None:  # type: ignore[no-untyped-def]
    response = async_ep.predict(req(big=17 << 20)).get(timeout=120)
    assert response.status == "FAILURE" and "limit" in response.traceback


def test_errors_sync_endpoint_unknown_task_and_bad_input(serving_server: ServerHandle, async_ep) -> None:  # type: ignore[no-untyped-def]
    client = client_for(serving_server)
    sync = client.create_model_endpoint("sync-for-async", "work", **SMALL)
    with pytest.raises(launch.FailedPreconditionError, match="sync"):
        client.async_request("sync-for-async", args={"x": 1})
    client.delete_model_endpoint(sync)
    with pytest.raises(launch.NotFoundError):
        client.get_async_response("0" * 32)
    task_id = client.async_request("async-ep", args={"x": 1}, return_pickled=False)
    bob = client_for(serving_server, "bob")
    with pytest.raises(launch.NotFoundError):
        bob.get_async_response(task_id)
    with pytest.raises(launch.NotFoundError):
        list(bob._watch_tasks([task_id], timeout=5))
    with pytest.raises(launch.NotFoundError):
        bob.async_request("async-ep", args={"x": 1})
    for request_input in (ipb.RequestInput(), ipb.RequestInput(args_json="[1]")):
        with pytest.raises(grpc.RpcError) as err:
            stub(serving_server).CreateTask(
                tpb.CreateTaskRequest(endpoint_name="async-ep", task=tpb.TaskSpec(input=request_input)),
                metadata=auth(serving_server),
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_queue_cap_cancel_and_watch(serving_server: ServerHandle, parked_ep) -> None:  # type: ignore[no-untyped-def]
    client = client_for(serving_server)
    futures = [parked_ep.predict(req(x=i)) for i in range(5)]
    with pytest.raises(launch.ResourceExhaustedError, match="cap 5"):
        parked_ep.predict(req(x=99))
    assert client.get_async_response(futures[0].async_task_id)["state"] == "PENDING"
    cancelled = (
        stub(serving_server)
        .CancelTask(tpb.CancelTaskRequest(task_id=futures[0].async_task_id), metadata=auth(serving_server))
        .task
    )
    assert cancelled.state == ipb.RESULT_STATE_CANCELLED
    assert futures[0].get(timeout=10).status == "CANCELLED"
    parked_ep.predict(req(x=100))  # the cancelled task freed a place in the queue
    for future in futures[1:]:
        stub(serving_server).CancelTask(
            tpb.CancelTaskRequest(task_id=future.async_task_id), metadata=auth(serving_server)
        )


def test_tasks_expire_when_not_started_in_time(serving_server: ServerHandle) -> None:
    client = client_for(serving_server)
    ep = client.create_model_endpoint(
        "expiring-ep",
        "parked",
        **SMALL,
        gpus=1,
        gpu_type="nvidia-ampere-a100",
        endpoint_type="async",
        task_expiry_seconds=1,
    )
    future = ep.predict(req(x=1))
    response = future.get(timeout=30)
    assert response.status == "FAILURE" and "expired" in response.traceback
    client.delete_model_endpoint(ep)


def test_deleting_an_endpoint_cancels_its_queued_tasks(serving_server: ServerHandle) -> None:
    client = client_for(serving_server)
    ep = client.create_model_endpoint(
        "doomed-ep", "parked", **SMALL, gpus=1, gpu_type="nvidia-ampere-a100", endpoint_type="async"
    )
    future = ep.predict(req(x=1))
    client.delete_model_endpoint(ep)
    response = future.get(timeout=60)
    assert response.status == "CANCELLED" and "deleted" in response.traceback


def test_scale_from_zero_drains_the_queue(serving_server: ServerHandle) -> None:
    client = client_for(serving_server)
    ep = client.create_model_endpoint(
        "zero-async-ep", "work", **SMALL, min_workers=0, max_workers=2, per_worker=2, endpoint_type="async"
    )
    wait_status(ep, "READY")
    wait_for(lambda: ep.worker_settings()["available_workers"] == 0, 30, "zero workers")
    batch = ep.predict_batch(
        [launch.EndpointRequest(args={"x": i}, request_id=str(i), return_pickled=False) for i in range(50)]
    )
    wait_for(lambda: batch.is_done(poll=True), 90, "the queue to drain from zero workers", interval=0.1)
    assert all(r.status == "SUCCESS" for r in batch.get_responses().values())
    client.delete_model_endpoint(ep)
