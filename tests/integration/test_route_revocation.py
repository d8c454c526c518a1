"""Revoking an API key stops the direct-route tokens fetched with it (issue #11, finding 15),
end to end: real server with its serving layer, real Ray cluster, a real replica. A route is
fetched with a second key, predicts go straight to the replica, the key is revoked with
`launch-server keys revoke`, and within a few seconds the replica refuses that token while a
token of the owner's other key still works. The same server shows a too-large watch refused
(finding 4). Ray: run under flock /tmp/launch-ray.lock."""

from __future__ import annotations

import grpc
import pytest
from launch.v1 import inference_pb2 as ipb
from launch.v1 import model_endpoint_pb2 as epb
from launch.v1 import model_endpoint_pb2_grpc as egrpc
from launch.v1 import replica_pb2 as rpb
from launch.v1 import task_pb2 as tpb
from launch.v1 import task_pb2_grpc as tgrpc

from tests.integration.test_direct_route import direct_predict, run_tasks
from tests.integration.test_endpoints import ENV, SMALL, client_for, make_echo, wait_for, wait_status
from tests.server_fixtures import serving_server_fixture
from tests.support import ServerHandle

NAME = "revocable"


server = serving_server_fixture("revocation", "r{dir}")


def route_with(server: ServerHandle, key: str) -> epb.GetModelEndpointRouteResponse:
    stub = egrpc.ModelEndpointServiceStub(server.channel())
    request = epb.GetModelEndpointRouteRequest(name=NAME)
    return stub.GetModelEndpointRoute(request, metadata=(("authorization", f"Bearer {key}"),), timeout=10)


def refusal(address: str, token: str) -> str | None:
    """None when the replica answers the token's predict; otherwise its UNAUTHENTICATED message."""
    try:
        direct_predict(address, token, NAME)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.UNAUTHENTICATED, exc  # type: ignore[attr-defined]
        return exc.details()  # type: ignore[attr-defined]
    return None


def test_a_revoked_keys_route_token_is_refused_within_seconds(server: ServerHandle) -> None:
    client = client_for(server)  # alice's first key
    bundle = client.create_model_bundle("echo", ENV, predict_fn_or_cls=make_echo(), requirements=[])
    endpoint = client.create_model_endpoint(NAME, bundle, **SMALL, min_workers=1, max_workers=1)
    try:
        wait_status(endpoint, "READY")
        second = server.cli("keys", "create", "--owner", "alice").stdout.strip()
        first = server.key_for("alice")
        kept = wait_for(lambda: (r := route_with(server, first)).replica_addresses and r, 60, "a route")
        revoked = route_with(server, second)
        (address,) = revoked.replica_addresses
        assert revoked.route_token.split(".")[2] == second.split("_")[1]  # the token names its key
        assert refusal(address, revoked.route_token) is None
        assert refusal(address, kept.route_token) is None  # type: ignore[union-attr]

        server.cli("keys", "revoke", second.split("_")[1])
        # The server publishes revocations every second, the replica reads them every 2 s.
        message = wait_for(lambda: refusal(address, revoked.route_token), 20, "the revoked key's token refused")
        assert "revoked" in str(message)
        assert refusal(address, kept.route_token) is None  # type: ignore[union-attr]
        with pytest.raises(grpc.RpcError) as err:  # nor does the task channel take it
            one = rpb.RunTasksRequest(tag=1, input=ipb.RequestInput(args_json="{}"))
            run_tasks(address, revoked.route_token, [one])
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as err:  # and the server refuses the key itself
            route_with(server, second)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        client.delete_model_endpoint(endpoint)


def test_a_too_large_watch_is_invalid_argument(server: ServerHandle) -> None:
    stub = tgrpc.TaskServiceStub(server.channel())
    request = tpb.WatchTasksRequest(task_ids=[f"{i:032x}" for i in range(10_001)])
    metadata = (("authorization", f"Bearer {server.key_for('alice')}"),)
    with pytest.raises(grpc.RpcError) as err:
        list(stub.WatchTasks(request, metadata=metadata, timeout=30))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "task_ids" in err.value.details() and "10000" in err.value.details().replace(",", "")
