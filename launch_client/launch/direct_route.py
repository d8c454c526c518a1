"""The SDK side of the direct route: sync predicts go straight to an endpoint's replicas, which
answer launch.v1.InferenceService themselves, instead of through the server (one hop, not two).

The server stays in charge: it says which replicas exist and hands out a short-lived token for
them (ModelEndpointService.GetModelEndpointRoute, asked again every few seconds as the endpoint
scales). Whenever the direct route cannot answer -- no running replica (scaled to zero), a
replica that is stopping, a token the replica refuses, a replica at its concurrency limit, or a
server without the RPC -- the request goes through the server's Predict, which waits for
replicas, queues, and gives the authoritative error. So turning the route off
(LAUNCH_DIRECT_ROUTE=0, or direct_route=False) changes speed, never results.

A replica that dies in the middle of a direct request answers UNAVAILABLE, and the request is
then sent once through the server: a sync predict may run twice in that case, never zero times.

Each client keeps one channel per replica address and sends each request to the replica it has
the fewest requests in flight on (ties go round-robin), the usual least-outstanding balancer."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from launch.v1 import inference_pb2 as ipb
from launch.v1 import inference_pb2_grpc as igrpc
from launch.v1 import model_endpoint_pb2 as epb

from .errors import from_rpc_error

# Errors after which the server is asked instead (see module doc).
_FALL_BACK = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNIMPLEMENTED,
}
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.max_send_message_length", 64 << 20),
    ("grpc.keepalive_time_ms", 30_000),
]


@dataclass
class _Route:
    addresses: tuple[str, ...]
    metadata: tuple[tuple[str, str], ...]
    expires: float  # time.time() after which the token is refused
    refresh_at: float  # time.monotonic() after which the server is asked again
    refreshing: bool = False


@dataclass
class _Replica:
    stub: igrpc.InferenceServiceStub
    channel: grpc.Channel
    in_flight: int = 0
    used: float = field(default_factory=time.monotonic)


class DirectRouter:
    """Thread-safe: one per LaunchClient, shared by all its threads."""

    def __init__(self, get_route: Callable[[str], epb.GetModelEndpointRouteResponse]) -> None:
        self._get_route = get_route
        self._routes: dict[str, _Route] = {}
        self._replicas: dict[str, _Replica] = {}
        self._lock = threading.Lock()
        self._turn = itertools.count()
        self.supported = True  # False once the server says it has no GetModelEndpointRoute

    def predict(self, request: ipb.PredictRequest, timeout: float | None) -> ipb.PredictResponse | None:
        """The replica's answer, or None: send the request through the server instead."""
        route = self._route(request.endpoint_name)
        if route is None or not route.addresses:
            return None
        address, replica = self._pick(route.addresses)
        try:
            return replica.stub.Predict(request, metadata=route.metadata, timeout=timeout)
        except grpc.RpcError as exc:
            if exc.code() in _FALL_BACK:
                self.forget(request.endpoint_name)
                return None
            raise from_rpc_error(exc) from None
        finally:
            with self._lock:
                replica.in_flight -= 1

    def forget(self, endpoint_name: str) -> None:
        """Drops what is known about an endpoint's route: the next request asks the server."""
        with self._lock:
            self._routes.pop(endpoint_name, None)

    def close(self) -> None:
        with self._lock:
            replicas, self._replicas, self._routes = list(self._replicas.values()), {}, {}
        for replica in replicas:
            replica.channel.close()

    # ---- routes --------------------------------------------------------------------------------

    def _route(self, name: str) -> _Route | None:
        if not self.supported:
            return None
        now = time.monotonic()
        with self._lock:
            route = self._routes.get(name)
            usable = route is not None and time.time() < route.expires - 5
            if route is not None and (now < route.refresh_at or route.refreshing):
                return route if usable or not route.addresses else None
            if route is not None:
                route.refreshing = True  # this thread refreshes; the others keep using the old one
        fresh = self._fetch(name)
        with self._lock:
            if fresh is None:
                self._routes.pop(name, None)
            else:
                self._routes[name] = fresh
                self._drop_unused_replicas()
        return fresh

    def _fetch(self, name: str) -> _Route | None:
        try:
            response = self._get_route(name)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                self.supported = False
            return None  # NOT_FOUND, async endpoint, server down: Predict on the server says it
        refresh = response.refresh_after_seconds or 2.0
        metadata = (("authorization", f"Bearer {response.route_token}"),)
        expires = float(response.route_token_expire_time.seconds) if response.route_token else 0.0
        return _Route(tuple(response.replica_addresses), metadata, expires, time.monotonic() + refresh)

    # ---- replicas ------------------------------------------------------------------------------

    def _pick(self, addresses: tuple[str, ...]) -> tuple[str, _Replica]:
        """Least requests in flight from this client; ties broken round-robin."""
        with self._lock:
            start = next(self._turn)
            best: tuple[str, _Replica] | None = None
            for i in range(len(addresses)):
                address = addresses[(start + i) % len(addresses)]
                replica = self._replicas.get(address)
                if replica is None:
                    channel = grpc.insecure_channel(address, options=_CHANNEL_OPTIONS)
                    replica = _Replica(igrpc.InferenceServiceStub(channel), channel)
                    self._replicas[address] = replica
                if best is None or replica.in_flight < best[1].in_flight:
                    best = (address, replica)
            assert best is not None
            best[1].in_flight += 1
            best[1].used = time.monotonic()
            return best

    def _drop_unused_replicas(self) -> None:
        """Closes channels to replicas no route names any more (scaled down); caller holds the lock."""
        named = {a for route in self._routes.values() for a in route.addresses}
        for address in [a for a, r in self._replicas.items() if a not in named and r.in_flight == 0]:
            self._replicas.pop(address).channel.close()


def route_request(name: str) -> epb.GetModelEndpointRouteRequest:
    return epb.GetModelEndpointRouteRequest(name=name)


def is_enabled(explicit: bool | None, environ: dict[str, str] | Any) -> bool:
    """direct_route=... wins; otherwise LAUNCH_DIRECT_ROUTE (default on)."""
    if explicit is not None:
        return explicit
    return environ.get("LAUNCH_DIRECT_ROUTE", "1").lower() not in ("0", "false", "no")
