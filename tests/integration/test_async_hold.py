"""The one-write path of a watched async request (CreateAndWatchTask, `AsyncEndpoint.predict`): a
task that starts at once has its row held back for up to LAUNCH_TASK_HOLD_MS, and when its replica
answers within that it is stored once, already finished, and the first message is the result.
This module's server holds for 2 s, so which path a request takes is decided by the test (a fast
echo, a 3 s sleep, a replica that dies), not by how busy the machine is."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import launch
import pytest
from launch.v1 import inference_pb2 as ipb
from launch.v1 import task_pb2 as tpb
from launch.v1 import task_pb2_grpc as tgrpc

from tests.integration.test_async_faults import (
    ENDPOINT_READY_S,
    Receiver,
    callback_endpoint,
    callback_row,
    delete_quietly,
    get_task,
    make_fragile,
    sqlite_rows,
)
from tests.integration.test_endpoints import ENV, SMALL, client_for, wait_for, wait_status
from tests.server_fixtures import serving_server_fixture
from tests.support import ServerHandle, free_port

HOLD_MS = 2000


server = serving_server_fixture("hold", "ah{pid}", LAUNCH_TASK_HOLD_MS=str(HOLD_MS))


def make_work():  # type: ignore[no-untyped-def]
    """Defined inside a function so cloudpickle takes it by value (replicas cannot import tests)."""

    def work(x: object = None, sleep: float = 0.0, fail: bool = False, marker: str = "") -> object:
        import os as _os
        import time as _t

        if sleep:
            _t.sleep(sleep)
        if fail:
            raise RuntimeError(f"failed on {x}")
        if x == "die" and not _os.path.exists(marker):
            with open(marker, "w") as f:
                f.write("died once")
            _os._exit(1)  # the replica process dies while the task's row is held back
        return {"x": x}

    return work


@pytest.fixture(scope="module")
def endpoint(server: ServerHandle) -> Iterator[launch.AsyncEndpoint]:
    client = client_for(server)
    bundle = client.create_model_bundle("hold-work", ENV, predict_fn_or_cls=make_work(), requirements=[])
    ep = client.create_model_endpoint(
        "hold-ep", bundle, **SMALL, min_workers=1, max_workers=1, per_worker=4, endpoint_type="async"
    )
    wait_status(ep, "READY", timeout=ENDPOINT_READY_S)
    warm_up(client, "hold-ep")
    yield ep
    delete_quietly(client, "hold-ep")


def warm_up(client: launch.LaunchClient, name: str) -> None:
    """A few unwatched tasks first: a new replica's first calls can be slow on a busy machine, and
    the server skips the hold for an endpoint whose recent answers took longer than it."""
    for i in range(3):
        task_id = client.async_request(name, args={"x": f"warm{i}"}, return_pickled=False)
        wait_for(lambda t=task_id: client.get_async_response(t)["state"] == "SUCCESS", 60, "a warm-up task")


def create_and_watch(
    server: ServerHandle, args: str, request_id: str = "", arrivals: list[float] | None = None
) -> list[tpb.Task]:
    """Every message of one CreateAndWatchTask call; `arrivals` gets each one's time.monotonic()."""
    with server.channel() as channel:
        request = tpb.CreateAndWatchTaskRequest(
            request_id=request_id, endpoint_name="hold-ep", task=tpb.TaskSpec(input=ipb.RequestInput(args_json=args))
        )
        metadata = (("authorization", f"Bearer {server.key_for('alice')}"),)
        stream = tgrpc.TaskServiceStub(channel).CreateAndWatchTask(request, metadata=metadata, timeout=120)
        tasks = []
        for message in stream:
            tasks.append(message.task)
            if arrivals is not None:
                arrivals.append(time.monotonic())
        return tasks


def test_a_task_answered_within_the_hold_is_stored_once_finished(server: ServerHandle, endpoint) -> None:  # type: ignore[no-untyped-def]
    [only] = create_and_watch(server, '{"x": 1}')
    assert (only.state, only.result.result, only.attempts) == (ipb.RESULT_STATE_SUCCESS, '{"x": 1}', 1)
    assert only.end_time.ToDatetime() >= only.start_time.ToDatetime() >= only.create_time.ToDatetime()
    stored = get_task(server, only.task_id)
    assert (stored.state, stored.result.result, stored.attempts) == (ipb.RESULT_STATE_SUCCESS, '{"x": 1}', 1)
    [(state, lease_owner, callback_state)] = sqlite_rows(
        server, "SELECT state, lease_owner, callback_state FROM tasks WHERE task_id = ?", (only.task_id,)
    )
    assert (state, lease_owner, callback_state) == ("SUCCESS", None, "NONE")
    # A retry of the same request_id answers the stored task; nothing runs again.
    first = create_and_watch(server, '{"x": 2}', request_id="hold-r1")
    again = create_and_watch(server, '{"x": 2}', request_id="hold-r1")
    assert [(t.task_id, t.state, t.attempts) for t in again] == [(first[-1].task_id, ipb.RESULT_STATE_SUCCESS, 1)]
    # Through the SDK: predict() already holds the result, and get() answers it.
    future = endpoint.predict(launch.EndpointRequest(args={"x": 3}, return_pickled=False))
    assert client_for(server).get_async_response(future.async_task_id) == {"state": "SUCCESS", "result": '{"x": 3}'}
    assert future.get(timeout=5).result == '{"x": 3}'


def test_a_predict_function_that_raises_is_a_finished_failure(server: ServerHandle, endpoint) -> None:  # type: ignore[no-untyped-def]
    [only] = create_and_watch(server, '{"x": 4, "fail": true}')
    assert only.state == ipb.RESULT_STATE_FAILURE and "RuntimeError: failed on 4" in only.result.traceback


def test_a_task_slower_than_the_hold_is_stored_started_at_its_end_and_finished_later(
    server: ServerHandle,
    endpoint,  # type: ignore[no-untyped-def]
) -> None:
    begun = time.monotonic()
    arrivals: list[float] = []
    messages = create_and_watch(server, '{"x": 5, "sleep": 3}', arrivals=arrivals)
    assert [m.state for m in messages] == [ipb.RESULT_STATE_STARTED, ipb.RESULT_STATE_SUCCESS]
    assert messages[-1].result.result == '{"x": 5}' and messages[-1].attempts == 1
    # The stored task came only after the 2 s hold (a lower bound: a busy machine only adds).
    assert arrivals[0] - begun >= HOLD_MS / 1000 * 0.9


def test_a_replica_that_dies_within_the_hold_gets_its_task_retried(
    server: ServerHandle,
    endpoint,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    marker = tmp_path / "died"
    messages = create_and_watch(server, f'{{"x": "die", "marker": "{marker}"}}')
    assert marker.exists(), "the replica never ran the dying branch"
    assert messages[0].state == ipb.RESULT_STATE_STARTED  # stored for its retry once the call failed
    assert (messages[-1].state, messages[-1].result.result) == (ipb.RESULT_STATE_SUCCESS, '{"x": "die"}')
    assert get_task(server, messages[-1].task_id).attempts == 2


def test_a_task_stored_finished_still_gets_its_callback(server: ServerHandle) -> None:
    port = free_port()
    receiver = Receiver(port)
    receiver.start()
    client = client_for(server)
    ep = callback_endpoint(client, "hold-cb-ep", make_fragile(), port)
    try:
        wait_status(ep, "READY", timeout=ENDPOINT_READY_S)
        future = ep.predict(launch.EndpointRequest(args={"x": "hi"}, return_pickled=False))
        assert client.get_async_response(future.async_task_id) == {"state": "SUCCESS", "result": '"hi"'}
        got = wait_for(lambda: receiver.bodies("/hook", future.async_task_id), 30, "the callback")
        assert got == [{"task_id": future.async_task_id, "status": "SUCCESS", "result": '"hi"', "traceback": None}]
        wait_for(lambda: callback_row(server, future.async_task_id)[0] == "DONE", 10, "callback DONE")
    finally:
        receiver.stop()
        delete_quietly(client, "hold-cb-ep")


def test_bad_input_is_invalid_argument(server: ServerHandle, endpoint) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as err:
        create_and_watch(server, "[1]")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
