"""A replica's own port reads args_json with the server's JSON reader: deep nesting, integers past
4,300 digits and NaN answer INVALID_ARGUMENT naming the field (they escaped as UNKNOWN), through
the server and straight to the replica alike, and the replica goes on serving. Real server, real
Ray cluster, one real replica (the direct-route tests' server)."""

from __future__ import annotations

import grpc
from launch.v1 import inference_pb2 as ipb
from launch.v1 import inference_pb2_grpc as igrpc

from tests.integration.test_direct_route import direct_predict, server, wait_route  # noqa: F401 - server is a fixture
from tests.integration.test_endpoints import ENV, SMALL, client_for, make_echo, wait_status
from tests.integration.test_input_limits import refusal
from tests.support import ServerHandle

BAD = [
    '{"x": ' + "[" * 100_000 + "]" * 100_000 + "}",
    '{"x": ' + "1" * 5000 + "}",
    '{"x": NaN}',
    '{"x": ' + "[" * 101 + "]" * 101 + "}",
]


def test_replica_port_refuses_unreadable_json_for_its_field(server: ServerHandle) -> None:  # noqa: F811
    client = client_for(server)
    bundle = client.create_model_bundle("lim-echo", ENV, predict_fn_or_cls=make_echo(), requirements=[])
    ep = client.create_model_endpoint("lim-echo", bundle, **SMALL, min_workers=1, max_workers=1)
    try:
        wait_status(ep, "READY")
        route = wait_route(server, "lim-echo")
        address, token = route.replica_addresses[0], route.route_token
        via_server = igrpc.InferenceServiceStub(server.channel())
        metadata = (("authorization", f"Bearer {server.key_for('alice')}"),)
        for text in BAD:
            assert refusal(lambda t=text: direct_predict(address, token, "lim-echo", t)) == (
                grpc.StatusCode.INVALID_ARGUMENT,
                "input.args_json",
            )
            request = ipb.PredictRequest(endpoint_name="lim-echo", input=ipb.RequestInput(args_json=text))
            assert refusal(lambda r=request: via_server.Predict(r, metadata=metadata, timeout=30)) == (
                grpc.StatusCode.INVALID_ARGUMENT,
                "input.args_json",
            )
        answer = direct_predict(address, token, "lim-echo", '{"x": 1}')
        assert answer.result.state == ipb.RESULT_STATE_SUCCESS and answer.result.result == '{"x": 1}'
    finally:
        client.delete_model_endpoint(ep)
