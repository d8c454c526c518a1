"""TLS on replica ports (LAUNCH_REPLICA_TLS=1): replicas serve the direct route and the task
channel over TLS with a certificate from the servers' own authority, which the route hands to
clients; a plaintext client gets nothing from them. Real server, real Ray cluster, real replicas."""

from __future__ import annotations

import grpc
import pytest
from launch.v1 import inference_pb2 as ipb
from launch.v1 import inference_pb2_grpc as igrpc

from launch_server.wire.replica_tls import SERVER_NAME
from tests.integration.test_direct_route import get_route
from tests.integration.test_endpoints import ENV, SMALL, args, client_for, make_echo, wait_for, wait_status
from tests.server_fixtures import serving_server_fixture
from tests.support import ServerHandle

server = serving_server_fixture("tls", "tls{dir}", LAUNCH_REPLICA_TLS="1")


def predict_over(channel: grpc.Channel, token: str, name: str) -> ipb.PredictResponse:
    request = ipb.PredictRequest(endpoint_name=name, input=ipb.RequestInput(args_json='{"x": 1}'))
    stub = igrpc.InferenceServiceStub(channel)
    return stub.Predict(request, metadata=(("authorization", f"Bearer {token}"),), timeout=10)


def test_replicas_speak_tls_with_the_routes_authority(server: ServerHandle) -> None:
    client = client_for(server)
    bundle = client.create_model_bundle("echo", ENV, predict_fn_or_cls=make_echo(), requirements=[])
    sync = client.create_model_endpoint("tls-sync", bundle, **SMALL, min_workers=1, max_workers=1)
    queued = client.create_model_endpoint(
        "tls-async", bundle, endpoint_type="async", **SMALL, min_workers=1, max_workers=1
    )
    wait_status(sync, "READY")
    wait_status(queued, "READY")
    route = wait_for(lambda: (r := get_route(server, "tls-sync")) and r.replica_addresses and r, 60, "a route")
    assert "BEGIN CERTIFICATE" in route.replica_ca_pem and route.replica_server_name == SERVER_NAME
    (address,) = route.replica_addresses

    credentials = grpc.ssl_channel_credentials(root_certificates=route.replica_ca_pem.encode())
    options = [("grpc.ssl_target_name_override", route.replica_server_name)]
    with grpc.secure_channel(address, credentials, options=options) as channel:
        assert predict_over(channel, route.route_token, "tls-sync").result.result == '{"x": 1}'
    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as err:
        predict_over(channel, route.route_token, "tls-sync")
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # no plaintext answer at all
    wrong = grpc.ssl_channel_credentials()  # the system's authorities do not vouch for replicas
    with grpc.secure_channel(address, wrong, options=options) as channel, pytest.raises(grpc.RpcError) as err:
        predict_over(channel, route.route_token, "tls-sync")
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE

    assert sync.predict(args(x=3)).result == '{"x": 3}'
    used = client._direct._replicas  # noqa: SLF001 - the SDK went one hop, over TLS
    assert address in used and used[address].connected
    # The dispatcher's task channel verifies replicas the same way.
    assert queued.predict(args(x=4)).get(timeout=60).result == '{"x": 4}'
    assert "did not take a task on its direct port" not in server.log()
    client.delete_model_endpoint(sync)
    client.delete_model_endpoint(queued)
