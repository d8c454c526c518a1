"""Every RPC of every launch.v1 service, from the descriptors, against a real launch-server:
without a good key each is refused UNAUTHENTICATED. A service the server does not register
(ReplicaService: replicas serve it, behind their route tokens) answers UNIMPLEMENTED, and the
registered ones are exactly those the server lists in reflection. Health and reflection stay
open by design."""

from __future__ import annotations

import secrets

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from launch_server.api.server import SERVICES
from tests.auth_rpcs import BAD_KEYS, every_rpc, status_of
from tests.support import ServerHandle

RPCS = list(every_rpc())


def listed_services(channel: grpc.Channel) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    [answer] = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
    return {s.name for s in answer.list_services_response.service}


def test_every_rpc_refuses_a_missing_or_bad_key(server: ServerHandle) -> None:
    with server.channel() as channel:
        registered = listed_services(channel) & {r.service for r in RPCS}
        assert registered == set(SERVICES)  # what reflection lists is what the server serves
        for rpc in RPCS:
            expected = grpc.StatusCode.UNAUTHENTICATED if rpc.service in registered else grpc.StatusCode.UNIMPLEMENTED
            for what, metadata in BAD_KEYS.items():
                assert status_of(channel, rpc, metadata) == expected, f"{rpc.path} with {what}"
        assert {r.service for r in RPCS} - registered == {"launch.v1.ReplicaService"}


def test_health_stays_open(server: ServerHandle) -> None:
    with server.channel() as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_a_good_key_passes_the_check(server: ServerHandle) -> None:
    """The same empty calls with a real key get past authentication (whatever they answer next)."""
    metadata = (("authorization", f"Bearer {server.key_for('alice')}"),)
    with server.channel() as channel:
        for rpc in RPCS:
            if rpc.service in SERVICES:
                assert status_of(channel, rpc, metadata) != grpc.StatusCode.UNAUTHENTICATED, rpc.path


def test_a_real_key_is_answered_through_a_flood_of_made_up_ones(server: ServerHandle) -> None:
    """Hundreds of distinct well-formed unknown keys at once, then the same again: each is refused
    (UNAUTHENTICATED, or RESOURCE_EXHAUSTED past the waiting limit) and a real key still works."""
    from launch.v1 import model_bundle_pb2 as bpb
    from launch.v1 import model_bundle_pb2_grpc as bgrpc

    good = (("authorization", f"Bearer {server.key_for('alice')}"),)
    made_up = [(("authorization", f"Bearer lk_{secrets.token_hex(6)}_{'A' * 43}"),) for _ in range(300)]
    with server.channel() as channel:
        stub = bgrpc.ModelBundleServiceStub(channel)
        request = bpb.ListModelBundlesRequest()
        for _ in range(2):
            calls = [stub.ListModelBundles.future(request, metadata=m, timeout=60) for m in made_up]
            stub.ListModelBundles(request, metadata=good, timeout=60)
            codes = []
            for call in calls:
                try:
                    call.result()
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as exc:
                    codes.append(exc.code())  # type: ignore[attr-defined]
            allowed = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.RESOURCE_EXHAUSTED}
            assert set(codes) <= allowed
            assert grpc.StatusCode.UNAUTHENTICATED in codes
