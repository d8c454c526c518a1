"""Streaming endpoints through the server (issue #13): InferenceService.PredictStream on
launch-server reaches the replica through its Serve handle and streams one message per yielded
value, as it is yielded; a failure is the last message; the endpoint-type rules hold; a caller
that goes away (or whose deadline passes) closes the generator in the replica. Real server, real
Ray cluster, real replicas; SQLite (the backend does not touch this path). Raw stubs against the
server, so no call here takes the direct route; one SDK test streams the way users do."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import launch
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from launch.v1 import inference_pb2 as ipb
from launch.v1 import inference_pb2_grpc as igrpc
from launch.v1 import model_endpoint_pb2 as epb
from launch.v1 import model_endpoint_pb2_grpc as egrpc
from launch.v1 import task_pb2 as tpb
from launch.v1 import task_pb2_grpc as tgrpc

from tests.integration.test_endpoints import ENV, SMALL, args, client_for, make_echo, wait_for, wait_status
from tests.server_fixtures import serving_server_fixture
from tests.support import ServerHandle

# One call in flight per replica beyond per_worker: a stream that kept its slot after it was
# cancelled would make the next one wait (test_the_endpoint_is_free_again_after_cancelled_streams).
server = serving_server_fixture("streaming", "s{dir}", LAUNCH_MAX_ONGOING_REQUESTS="1")


def make_counter() -> Callable:
    """Yields {"i": 0..n-1}, `pause` seconds apart; raises after `fail_after` values when set;
    touches `closed_at` (a file) when the generator is closed, however it ends."""

    def count(n: int, pause: float = 0.0, fail_after: int = -1, closed_at: str = ""):  # type: ignore[no-untyped-def]
        import pathlib
        import time

        try:
            for i in range(n):
                if i == fail_after:
                    raise ValueError(f"failed after {i} values")
                if i and pause:
                    time.sleep(pause)
                yield {"i": i}
        finally:
            if closed_at:
                pathlib.Path(closed_at).write_text("closed")

    return count


def metadata(server: ServerHandle, owner: str = "alice") -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {server.key_for(owner)}"),)


def stream_request(name: str, return_pickled: bool = False, **kw: object) -> ipb.PredictStreamRequest:
    import json

    return ipb.PredictStreamRequest(
        endpoint_name=name, input=ipb.RequestInput(args_json=json.dumps(kw), return_pickled=return_pickled)
    )


def predict_stream(server: ServerHandle, request: ipb.PredictStreamRequest, timeout: float = 60) -> Iterator:
    """The server's PredictStream call (never the direct route): an iterator of its messages."""
    channel = server.channel()
    return igrpc.InferenceServiceStub(channel).PredictStream(request, metadata=metadata(server), timeout=timeout)


def field_of(err: grpc.RpcError) -> str:
    """The field a BadRequest detail of the error names."""
    status = rpc_status.from_call(err)
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            return bad.field_violations[0].field
    return ""


def results(call: Iterator) -> list[tuple[int, str, str]]:
    """Every value of the stream's messages in order: each one's result, then its `more`."""
    return [(r.state, r.result, r.traceback) for m in call for r in (m.result, *m.more)]


@pytest.fixture(scope="module")
def endpoints(server: ServerHandle) -> Iterator[dict[str, launch.Endpoint]]:
    client = client_for(server)
    counter = client.create_model_bundle("counter", ENV, predict_fn_or_cls=make_counter(), requirements=[])
    echo = client.create_model_bundle("echo", ENV, predict_fn_or_cls=make_echo(), requirements=[])
    made = {
        "counter": client.create_model_endpoint(
            "counter", counter, **SMALL, endpoint_type="streaming", min_workers=1, per_worker=4
        ),
        "echo-stream": client.create_model_endpoint("echo-stream", echo, **SMALL, endpoint_type="streaming"),
        "echo-sync": client.create_model_endpoint("echo-sync", echo, **SMALL, min_workers=1),
        "echo-async": client.create_model_endpoint("echo-async", echo, **SMALL, endpoint_type="async", min_workers=0),
    }
    for name in ("counter", "echo-stream", "echo-sync"):
        wait_status(made[name], "READY")
    yield made
    for ep in made.values():
        client.delete_model_endpoint(ep)


def test_each_yielded_value_is_one_message_and_the_stream_ends_ok(server: ServerHandle, endpoints) -> None:  # type: ignore[no-untyped-def]
    call = predict_stream(server, stream_request("counter", n=3))
    assert results(call) == [(ipb.RESULT_STATE_SUCCESS, f'{{"i": {i}}}', "") for i in range(3)]
    assert call.code() == grpc.StatusCode.OK
    ep = client_for(server).get_model_endpoint("counter")
    assert ep.model_endpoint.endpoint_type == "streaming"


def test_a_function_that_returns_answers_a_one_message_stream(server: ServerHandle, endpoints) -> None:  # type: ignore[no-untyped-def]
    call = predict_stream(server, stream_request("echo-stream", x=1))
    assert results(call) == [(ipb.RESULT_STATE_SUCCESS, '{"x": 1}', "")]
    assert call.code() == grpc.StatusCode.OK


def test_a_failure_is_the_last_message_after_the_values_sent(server: ServerHandle, endpoints) -> None:  # type: ignore[no-untyped-def]
    call = predict_stream(server, stream_request("counter", n=5, fail_after=2))
    got = results(call)
    assert [(state, result) for state, result, _ in got[:2]] == [
        (ipb.RESULT_STATE_SUCCESS, '{"i": 0}'),
        (ipb.RESULT_STATE_SUCCESS, '{"i": 1}'),
    ]
    [(state, _, traceback)] = got[2:]
    assert state == ipb.RESULT_STATE_FAILURE and "failed after 2 values" in traceback
    assert call.code() == grpc.StatusCode.OK


def test_values_arrive_as_they_are_yielded(server: ServerHandle, endpoints) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    arrivals = [time.monotonic() - started for _ in predict_stream(server, stream_request("counter", n=3, pause=1.5))]
    assert len(arrivals) == 3
    assert arrivals[1] - arrivals[0] > 1.0 and arrivals[2] - arrivals[1] > 1.0  # not held back to the end


def test_return_pickled_is_refused(server: ServerHandle, endpoints) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as err:
        results(predict_stream(server, stream_request("counter", return_pickled=True, n=1)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_of(err.value) == "input.return_pickled"


def test_each_endpoint_type_takes_only_its_own_calls(server: ServerHandle, endpoints) -> None:  # type: ignore[no-untyped-def]
    inference = igrpc.InferenceServiceStub(server.channel())
    with pytest.raises(grpc.RpcError) as err:
        predict = ipb.PredictRequest(endpoint_name="counter", input=ipb.RequestInput(args_json='{"n": 1}'))
        inference.Predict(predict, metadata=metadata(server), timeout=30)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "streaming endpoint" in err.value.details() and "PredictStream" in err.value.details()
    for name in ("echo-sync", "echo-async"):
        with pytest.raises(grpc.RpcError) as err:
            results(predict_stream(server, stream_request(name, x=1)))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, name
    tasks = tgrpc.TaskServiceStub(server.channel())
    with pytest.raises(grpc.RpcError) as err:
        task = tpb.CreateTaskRequest(endpoint_name="counter", task=tpb.TaskSpec(input=ipb.RequestInput(args_json="{}")))
        tasks.CreateTask(task, metadata=metadata(server), timeout=30)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as err:
        results(predict_stream(server, stream_request("no-such-endpoint")))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_caller_that_goes_away_closes_the_generator(server: ServerHandle, endpoints, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "closed"
    call = predict_stream(server, stream_request("counter", n=1000, pause=0.05, closed_at=str(marker)))
    first = next(call)
    assert first.result.result == '{"i": 0}'
    assert not marker.exists()
    call.cancel()
    wait_for(marker.exists, 10, "the generator to be closed in the replica")


def test_the_deadline_bounds_the_whole_stream(server: ServerHandle, endpoints, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "closed"
    call = predict_stream(server, stream_request("counter", n=1000, pause=0.5, closed_at=str(marker)), timeout=3)
    got = []
    with pytest.raises(grpc.RpcError) as err:
        for message in call:
            got.append(message)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert 2 <= len(got) <= 8  # values flowed until the deadline
    wait_for(marker.exists, 10, "the generator to be closed in the replica")


def test_the_endpoint_is_free_again_after_cancelled_streams(server: ServerHandle, endpoints) -> None:  # type: ignore[no-untyped-def]
    """per_worker=4 and one replica: cancelled streams must give their slots back, or the fifth
    stream would wait in Serve's queue past its deadline."""
    for _ in range(6):
        call = predict_stream(server, stream_request("counter", n=1000, pause=0.05))
        next(call)
        call.cancel()
    call = predict_stream(server, stream_request("counter", n=2), timeout=20)
    assert len(results(call)) == 2


def test_the_route_and_the_sdk_stream_a_streaming_endpoint(server: ServerHandle, endpoints) -> None:  # type: ignore[no-untyped-def]
    stub = egrpc.ModelEndpointServiceStub(server.channel())
    route = wait_for(
        lambda: (
            (
                r := stub.GetModelEndpointRoute(
                    epb.GetModelEndpointRouteRequest(name="counter"), metadata=metadata(server), timeout=10
                )
            )
            and r.replica_addresses
            and r
        ),
        60,
        "a direct route for the streaming endpoint",
    )
    assert route.route_token  # type: ignore[union-attr]
    for direct in (True, False):  # one hop to the replica, and through the server's PredictStream
        client = launch.LaunchClient(api_key=server.key_for("alice"), endpoint=server.address, direct_route=direct)
        ep = client.get_model_endpoint("counter")
        assert isinstance(ep, launch.StreamingEndpoint)
        with ep.predict(args(n=3), timeout=60) as stream:
            assert [r.result for r in stream] == ['{"i": 0}', '{"i": 1}', '{"i": 2}']
