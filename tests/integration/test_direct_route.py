"""The direct route (docs/serving.md): a sync endpoint's replicas answer InferenceService on their
own port, the server hands out their addresses and a route token, and the SDK predicts in one hop.
Real server, real Ray cluster, real replicas; SQLite (the backend does not touch this path)."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator

import cloudpickle
import grpc
import launch
import pytest
from grpc_status import rpc_status
from launch.v1 import inference_pb2 as ipb
from launch.v1 import inference_pb2_grpc as igrpc
from launch.v1 import model_endpoint_pb2 as epb
from launch.v1 import model_endpoint_pb2_grpc as egrpc
from launch.v1 import replica_pb2 as rpb
from launch.v1 import replica_pb2_grpc as rgrpc

from tests.integration.test_endpoints import ENV, SMALL, args, client_for, make_echo, wait_for, wait_status
from tests.server_fixtures import serving_server_fixture
from tests.support import REPO, ServerHandle

server = serving_server_fixture("direct", "d{dir}")


def get_route(server: ServerHandle, name: str, owner: str = "alice") -> epb.GetModelEndpointRouteResponse:
    stub = egrpc.ModelEndpointServiceStub(server.channel())
    metadata = (("authorization", f"Bearer {server.key_for(owner)}"),)
    return stub.GetModelEndpointRoute(epb.GetModelEndpointRouteRequest(name=name), metadata=metadata, timeout=10)


def direct_predict(address: str, token: str, name: str, args_json: str = '{"x": 1}') -> ipb.PredictResponse:
    with grpc.insecure_channel(address) as channel:
        stub = igrpc.InferenceServiceStub(channel)
        request = ipb.PredictRequest(endpoint_name=name, input=ipb.RequestInput(args_json=args_json))
        return stub.Predict(request, metadata=(("authorization", f"Bearer {token}"),), timeout=30)


def run_tasks(address: str, token: str, requests: list[rpb.RunTasksRequest]) -> tuple[list[rpb.RunTasksResponse], dict]:
    """One RunTasks call (the dispatcher's task channel) to a replica: its answers and header."""
    with grpc.insecure_channel(address) as channel:
        call = rgrpc.ReplicaServiceStub(channel).RunTasks(
            iter(requests), metadata=(("authorization", f"Bearer {token}"),), timeout=30
        )
        answers = list(call)
        return answers, dict(call.initial_metadata())


def wait_route(server: ServerHandle, name: str, replicas: int = 1) -> epb.GetModelEndpointRouteResponse:
    return wait_for(  # type: ignore[return-value]
        lambda: (r := get_route(server, name)) and len(r.replica_addresses) >= replicas and r,
        60,
        f"{replicas} replica address(es) for {name}",
    )


@pytest.fixture(scope="module")
def two_endpoints(server: ServerHandle) -> Iterator[tuple[launch.SyncEndpoint, launch.SyncEndpoint]]:
    client = client_for(server)
    bundle = client.create_model_bundle("echo", ENV, predict_fn_or_cls=make_echo(), requirements=[])
    first = client.create_model_endpoint("first", bundle, **SMALL, min_workers=1, max_workers=1)
    second = client.create_model_endpoint("second", bundle, **SMALL, min_workers=1, max_workers=1)
    wait_status(first, "READY")
    wait_status(second, "READY")
    yield first, second
    client.delete_model_endpoint(first)
    client.delete_model_endpoint(second)


def test_route_names_the_replica_and_the_sdk_predicts_through_it(server: ServerHandle, two_endpoints) -> None:  # type: ignore[no-untyped-def]
    route = wait_route(server, "first")
    assert route.route_token.startswith("lr2.")
    assert route.route_token_expire_time.seconds > time.time() + 60
    assert 0 < route.refresh_after_seconds <= 10
    (address,) = route.replica_addresses
    assert address.startswith("127.0.0.1:")  # Ray is on loopback, so is the replica's port
    answer = direct_predict(address, route.route_token, "first", '{"x": 7, "y": [1, 2]}')
    assert answer.result.state == ipb.RESULT_STATE_SUCCESS
    assert answer.result.result == '{"x": 7, "y": [1, 2]}'

    client = client_for(server)
    ep = client.get_model_endpoint("first")
    assert ep.predict(args(x=3)).result == '{"x": 3}'
    used = client._direct._replicas  # noqa: SLF001 - proves the request went one hop
    assert address in used and used[address].in_flight == 0
    pickled = ep.predict(launch.EndpointRequest(args={"x": 4}, return_pickled=True))
    assert pickled.status == "SUCCESS" and pickled.result_url  # stored by the replica, loadable:
    assert cloudpickle.loads(client.download_result(pickled.result_url)) == {"x": 4}

    off = launch.LaunchClient(api_key=server.key_for("alice"), endpoint=server.address, direct_route=False)
    assert off.get_model_endpoint("first").predict(args(x=5)).result == '{"x": 5}'
    assert off._direct is None  # noqa: SLF001


def test_replica_refuses_missing_foreign_and_forged_tokens(server: ServerHandle, two_endpoints) -> None:  # type: ignore[no-untyped-def]
    first, second = wait_route(server, "first"), wait_route(server, "second")
    address = first.replica_addresses[0]
    for token, why in [
        ("", "not a route token"),
        (second.route_token, "another endpoint"),
        (first.route_token[:-4] + "0000", "signature"),
        (server.key_for("alice"), "not a route token"),  # an API key is not a route token
    ]:
        with pytest.raises(grpc.RpcError) as err:
            direct_predict(address, token, "first")
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, token
        assert why in err.value.details()


def test_replica_checks_input_like_the_server(server: ServerHandle, two_endpoints) -> None:  # type: ignore[no-untyped-def]
    route = wait_route(server, "first")
    address, token = route.replica_addresses[0], route.route_token
    with pytest.raises(grpc.RpcError) as err:
        direct_predict(address, token, "second")  # a valid token for "first" names another endpoint
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        direct_predict(address, token, "first", "[1, 2]")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(err.value)
    assert status is not None and "input.args_json" in str(status.details)


def test_a_replica_runs_tasks_on_its_task_channel(server: ServerHandle, two_endpoints) -> None:  # type: ignore[no-untyped-def]
    """The replica's ReplicaService.RunTasks (what the dispatcher uses for async endpoints), reached
    here with a sync endpoint's route token, which clients may hold."""
    route = wait_route(server, "first")
    address = route.replica_addresses[0]

    requests = [rpb.RunTasksRequest(tag=7, input=ipb.RequestInput(args_json='{"x": 7}')), rpb.RunTasksRequest(tag=8)]
    answers, header = run_tasks(address, route.route_token, requests)
    assert header.get("launch-accepted") == "1"
    by_tag = {a.tag: a for a in answers}
    assert set(by_tag) == {7, 8}  # the caller closed its side: every request answered, then the call ended
    assert (by_tag[7].result.state, json.loads(by_tag[7].result.result)) == (ipb.RESULT_STATE_SUCCESS, {"x": 7})
    assert "input" in by_tag[8].refused and not by_tag[8].HasField("result")  # malformed: refused, not run
    for token in ("", route.route_token[:-4] + "0000", wait_route(server, "second").route_token):
        with pytest.raises(grpc.RpcError) as err:
            run_tasks(address, token, requests)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, token


def test_other_owners_get_no_route(server: ServerHandle, two_endpoints) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as err:
        get_route(server, "first", owner="bob")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        get_route(server, "no-such-endpoint")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_async_endpoints_have_no_direct_route(server: ServerHandle) -> None:
    client = client_for(server)
    bundle = client.create_model_bundle("echo-async", ENV, predict_fn_or_cls=make_echo(), requirements=[])
    ep = client.create_model_endpoint("async-ep", bundle, **SMALL, endpoint_type="async", min_workers=0)
    with pytest.raises(grpc.RpcError) as err:
        get_route(server, "async-ep")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    client.delete_model_endpoint(ep)


def test_async_tasks_reach_replicas_over_their_direct_port(server: ServerHandle, two_endpoints) -> None:  # type: ignore[no-untyped-def]
    """The dispatcher sends single tasks to an async endpoint's replica over the replica's own port
    (one hop instead of a Serve handle call), while clients still get no route to it."""
    client = client_for(server)
    bundle = client.create_model_bundle("echo-async-direct", ENV, predict_fn_or_cls=make_echo(), requirements=[])
    ep = client.create_model_endpoint("async-direct-ep", bundle, **SMALL, endpoint_type="async", min_workers=1)
    wait_status(ep, "READY")
    answered = re.compile(r"replica (\S+) answered a task over its direct port")
    wait_for(
        lambda: ep.predict(args(x=3)).get(timeout=30).result == json.dumps({"x": 3}) and answered.search(server.log()),
        60,
        "a task answered over the replica's direct port",
    )
    address = answered.search(server.log()).group(1)  # type: ignore[union-attr]
    with pytest.raises(grpc.RpcError) as err:
        get_route(server, "async-direct-ep")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as err:  # no client token opens it: only the server mints them
        direct_predict(address, "lr1.forged", "async-direct-ep")
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    sync_token = wait_route(server, "first").route_token  # a client's token, for another endpoint
    for token in ("lr1.forged", sync_token):  # nor the task channel the dispatcher uses
        with pytest.raises(grpc.RpcError) as err:
            run_tasks(address, token, [rpb.RunTasksRequest(tag=1, input=ipb.RequestInput(args_json="{}"))])
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, token
    client.delete_model_endpoint(ep)


def test_direct_load_scales_replicas_up_and_down(server: ServerHandle) -> None:
    """Requests that bypass Serve's routers still drive its autoscaler (the replica reports them
    as a custom metric), and the SDK spreads load over new replicas as they appear."""
    client = client_for(server)

    def slow_echo(x: int) -> int:
        import time as _t

        _t.sleep(0.2)
        return x

    bundle = client.create_model_bundle("slow-direct", ENV, predict_fn_or_cls=slow_echo, requirements=[])
    ep = client.create_model_endpoint("slow-direct-ep", bundle, **SMALL, min_workers=1, max_workers=3, per_worker=1)
    wait_status(ep, "READY")
    wait_route(server, "slow-direct-ep")
    stop = threading.Event()
    errors: list[BaseException] = []

    def load() -> None:
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                assert ep.predict(args(x=1), timeout=30).result == "1"
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=load) for _ in range(9)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(get_route(server, "slow-direct-ep").replica_addresses) == 3, 45, "three replica routes")
        time.sleep(5)  # the SDK refreshes its route every couple of seconds (when a request ends)
        used = {a for a, r in client._direct._replicas.items() if r.used > time.monotonic() - 2}  # noqa: SLF001
        assert len(used) == 3, used
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:3]
    wait_for(lambda: len(get_route(server, "slow-direct-ep").replica_addresses) == 1, 60, "back to one replica")
    assert ep.predict(args(x=2)).result == "2"  # the SDK drops the routes of stopped replicas
    client.delete_model_endpoint(ep)


def test_buf_curl_reaches_a_replica_as_docs_say(server: ServerHandle, two_endpoints) -> None:  # type: ignore[no-untyped-def]
    """docs/grpc-cli.md: ask the server for the route, then Predict on the replica with --schema."""
    from tests.integration.test_buf_curl import BUF

    if not BUF.exists():
        pytest.skip("needs node_modules/.bin/buf (npm ci)")

    def buf_curl(*args: str) -> subprocess.CompletedProcess:
        command = [str(BUF), "curl", "--protocol", "grpc", "--http2-prior-knowledge", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO)

    asked = buf_curl(
        "-H",
        f"authorization: Bearer {server.key_for('alice')}",
        "-d",
        '{"name": "first"}',
        f"http://{server.address}/launch.v1.ModelEndpointService/GetModelEndpointRoute",
    )
    assert asked.returncode == 0, asked.stderr
    route = json.loads(asked.stdout)
    address, token = route["replicaAddresses"][0], route["routeToken"]
    body = json.dumps({"endpoint_name": "first", "input": {"args_json": '{"x": 1}'}})
    answered = buf_curl(
        "--schema",
        "proto",
        "-H",
        f"authorization: Bearer {token}",
        "-d",
        body,
        f"http://{address}/launch.v1.InferenceService/Predict",
    )
    assert answered.returncode == 0, answered.stderr
    assert json.loads(answered.stdout)["result"] == {"state": "RESULT_STATE_SUCCESS", "result": '{"x": 1}'}


def test_a_stopping_replica_finishes_its_direct_requests(server: ServerHandle, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Serve drains only requests it routed; the replica itself drains its direct ones, so a
    scale-down or delete in the middle of a direct predict neither fails it nor runs it twice."""
    runs = str(tmp_path / "runs")

    def slow_once(x: int) -> int:
        import time as _t

        _t.sleep(5)  # longer than Serve's own drain and the port's close grace
        with open(runs, "a") as out:  # the replicas run on this machine's loopback cluster
            out.write(f"{x}\n")
        return x

    client = client_for(server)
    bundle = client.create_model_bundle("slow-once", ENV, predict_fn_or_cls=slow_once, requirements=[])
    ep = client.create_model_endpoint("drain-ep", bundle, **SMALL, min_workers=1, max_workers=1)
    wait_status(ep, "READY")
    wait_route(server, "drain-ep")
    answers: list[object] = []
    caller = threading.Thread(target=lambda: answers.append(ep.predict(args(x=7), timeout=60)))
    caller.start()
    wait_for(
        lambda: client._direct._replicas and any(r.in_flight for r in client._direct._replicas.values()),
        5,
        "the direct call",
    )  # noqa: SLF001
    time.sleep(0.3)
    client.delete_model_endpoint(ep)  # the replica is told to stop while the request runs
    caller.join(60)
    assert [a.result for a in answers] == ["7"]  # type: ignore[attr-defined]
    assert open(runs).read().splitlines() == ["7"]  # ran once
