"""The SDK side of the direct route: sync and streaming predicts go straight to an endpoint's
replicas, which answer launch.v1.InferenceService themselves, instead of through the server (one
hop, not two).

The server stays in charge: it says which replicas exist and hands out a short-lived token for
them (ModelEndpointService.GetModelEndpointRoute, asked again every few seconds as the endpoint
scales). Whenever the direct route cannot answer -- no running replica (scaled to zero), a
replica that is stopping, a token the replica refuses, a replica at its concurrency limit, or a
server without the RPC -- the request goes through the server's Predict, which waits for
replicas, queues, and gives the authoritative error. So turning the route off
(LAUNCH_DIRECT_ROUTE=0, or direct_route=False) changes speed, never results.

A replica that stops (scale-down, rollout) first withdraws its address and drains its direct
requests. One that dies in the middle of a direct request answers UNAVAILABLE, and the request is
then sent once through the server: a sync predict may run twice in that case, never zero times.
A replica address this client cannot reach (a node address private to the cluster) is skipped
after a one-second connect attempt, so clients outside the cluster network use the server.

Streaming predicts (PredictStream) take the same route, with one rule more: a stream falls back
to the server only before the replica accepted it (its ACCEPTED_HEADER initial metadata) and
before its first message. Past that the predict function is running and values may have been
consumed, so a failure is the caller's error; replaying the stream would run it twice and repeat
values already seen. An open stream counts as one request in flight on its replica until it ends.

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

from .connection import BASE_CHANNEL_OPTIONS, ServerStream
from .errors import LaunchError, UnimplementedError, from_rpc_error

# Initial metadata a replica sends once a request passed its checks and is about to run (the
# server's launch_server.wire.headers names it too; the SDK imports nothing of the server).
ACCEPTED_HEADER = "launch-accepted"

# Errors after which the server is asked instead (see module doc).
_FALL_BACK = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNIMPLEMENTED,
}


@dataclass
class _Route:
    addresses: tuple[str, ...]
    metadata: tuple[tuple[str, str], ...]
    expires: float  # time.time() after which the token is refused
    refresh_at: float  # time.monotonic() after which the server is asked again
    refreshing: bool = False
    ca_pem: str = ""  # replica ports speak TLS with certificates from this authority
    server_name: str = ""  # the name those certificates carry


@dataclass
class _Replica:
    stub: igrpc.InferenceServiceStub
    channel: grpc.Channel
    in_flight: int = 0
    used: float = field(default_factory=time.monotonic)
    connected: bool = False


# A replica address this client cannot connect to within CONNECT_TIMEOUT_S (say, a private node
# address seen from outside the cluster) is skipped for UNREACHABLE_FOR_S; after a fallback for
# any other reason the endpoint goes through the server for PAUSE_S, so a persistent refusal
# costs one extra call per PAUSE_S, not per request.
CONNECT_TIMEOUT_S = 1.0
UNREACHABLE_FOR_S = 60.0
PAUSE_S = 1.0
ROUTE_TIMEOUT_S = 10.0


class DirectRouter:
    """Thread-safe: one per LaunchClient, shared by all its threads. `get_route(name, timeout)`
    asks the server for the endpoint's route (through the client's Connection) and raises
    LaunchError when it cannot say."""

    def __init__(
        self, get_route: Callable[[str, float], epb.GetModelEndpointRouteResponse], require_tls: bool = False
    ) -> None:
        self._get_route = get_route
        # A client that talks TLS to the server sends nothing to a replica in plaintext.
        self._require_tls = require_tls
        self._routes: dict[str, _Route] = {}
        self._replicas: dict[str, _Replica] = {}
        self._unreachable: dict[str, float] = {}  # address -> time.monotonic() to try again
        self._paused: dict[str, float] = {}  # endpoint -> time.monotonic() to try again
        # Reentrant: a stream dropped without close() is released from PredictStream.__del__,
        # which garbage collection may run on a thread that holds this lock already.
        self._lock = threading.RLock()
        self._turn = itertools.count()
        self.supported = True  # False once the server says it has no GetModelEndpointRoute

    def predict(self, request: ipb.PredictRequest, timeout: float) -> ipb.PredictResponse | None:
        """The replica's answer, or None: send the request through the server instead."""
        name = request.endpoint_name
        chosen = self._choose(name, timeout)
        if chosen is None:
            return None
        route, address, replica = chosen
        try:
            if not replica.connected and not self._connect(address, replica):
                return None
            return replica.stub.Predict(request, metadata=route.metadata, timeout=timeout)
        except grpc.RpcError as exc:
            if exc.code() in _FALL_BACK:
                self._pause(name)
                return None
            raise from_rpc_error(exc) from None
        finally:
            with self._lock:
                replica.in_flight -= 1

    def open_stream(
        self, request: ipb.PredictStreamRequest, timeout: float, started: Callable[[Any], None] | None = None
    ) -> ServerStream | None:
        """The replica's stream past its first message (None as first: it ended without one), or
        None: send the request through the server instead. `timeout` bounds the whole stream,
        the route's fetch included; `started` gets the call as soon as it exists (see
        Connection.open_stream)."""
        began = time.monotonic()
        name = request.endpoint_name
        chosen = self._choose(name, timeout)
        if chosen is None:
            return None
        route, address, replica = chosen
        opened = None
        try:
            if not replica.connected and not self._connect(address, replica):
                return None
            left = max(0.0, timeout - (time.monotonic() - began))
            call = replica.stub.PredictStream(request, metadata=route.metadata, timeout=left)
            if started is not None:
                started(call)
            try:
                opened = ServerStream(call, next(call), on_end=lambda: self._release(replica))
            except StopIteration:
                return ServerStream(call, None)
            return opened
        except grpc.RpcError as exc:
            if exc.code() in _FALL_BACK and not _accepted(exc):
                self._pause(name)
                return None
            raise from_rpc_error(exc) from None
        finally:
            if opened is None:  # no stream to read on: it stops counting against its replica now
                self._release(replica)

    def _choose(self, name: str, timeout: float) -> tuple[_Route, str, _Replica] | None:
        """The endpoint's route and the replica to send to (counted in flight), or None: the
        server takes the request."""
        route = self._route(name, timeout)
        if route is None or not route.addresses:
            return None
        picked = self._pick(route)
        if picked is None:
            return None
        return route, *picked

    def _release(self, replica: _Replica) -> None:
        """A stream stops counting against its replica (once its reader is done with it)."""
        with self._lock:
            replica.in_flight -= 1

    def _pause(self, name: str) -> None:
        """After a fallback: use the server for PAUSE_S, then ask for a fresh route."""
        with self._lock:
            self._paused[name] = time.monotonic() + PAUSE_S
            route = self._routes.get(name)
            if route is not None:
                route.refresh_at = 0.0

    def _connect(self, address: str, replica: _Replica) -> bool:
        """First use of a replica: is it reachable from here at all? (A call on a channel that
        cannot connect would otherwise wait out the caller's whole deadline.)"""
        try:
            grpc.channel_ready_future(replica.channel).result(timeout=CONNECT_TIMEOUT_S)
        except grpc.FutureTimeoutError:
            with self._lock:
                self._unreachable[address] = time.monotonic() + UNREACHABLE_FOR_S
            return False
        replica.connected = True
        return True

    # ---- routes --------------------------------------------------------------------------------

    def _route(self, name: str, timeout: float) -> _Route | None:
        if not self.supported:
            return None
        now = time.monotonic()
        with self._lock:
            if self._paused.get(name, 0.0) > now:
                return None
            route = self._routes.get(name)
            if route is not None and (now < route.refresh_at or route.refreshing):
                usable = time.time() < route.expires - 5
                return route if usable else None
            if route is None:
                # One thread asks the server; the others use the server path meanwhile.
                route = self._routes[name] = _Route((), (), 0.0, now + ROUTE_TIMEOUT_S)
            route.refreshing = True
        fresh = None
        try:
            fresh = self._fetch(name, min(timeout, ROUTE_TIMEOUT_S))
        finally:
            with self._lock:
                if fresh is None:
                    self._routes.pop(name, None)
                    self._paused[name] = time.monotonic() + PAUSE_S
                else:
                    self._routes[name] = fresh
                    self._drop_unused_replicas()
        return fresh

    def _fetch(self, name: str, timeout: float) -> _Route | None:
        try:
            response = self._get_route(name, timeout)
        except UnimplementedError:
            self.supported = False
            return None
        except LaunchError:
            return None  # NOT_FOUND, async endpoint, server down: Predict on the server says it
        refresh = response.refresh_after_seconds or 2.0
        metadata = (("authorization", f"Bearer {response.route_token}"),)
        expires = float(response.route_token_expire_time.seconds) if response.route_token else 0.0
        addresses = tuple(response.replica_addresses)
        if self._require_tls and not response.replica_ca_pem:
            addresses = ()  # plaintext replicas: this client uses the server
        return _Route(
            addresses,
            metadata,
            expires,
            time.monotonic() + refresh,
            ca_pem=response.replica_ca_pem,
            server_name=response.replica_server_name,
        )

    # ---- replicas ------------------------------------------------------------------------------

    def _pick(self, route: _Route) -> tuple[str, _Replica] | None:
        """Least requests in flight from this client, among reachable replicas; ties round-robin."""
        now = time.monotonic()
        addresses = route.addresses
        with self._lock:
            start = next(self._turn)
            best: tuple[str, _Replica] | None = None
            for i in range(len(addresses)):
                address = addresses[(start + i) % len(addresses)]
                if self._unreachable.get(address, 0.0) > now:
                    continue
                replica = self._replicas.get(address)
                if replica is None:
                    channel = _channel_to(address, route)
                    replica = _Replica(igrpc.InferenceServiceStub(channel), channel)
                    self._replicas[address] = replica
                if best is None or replica.in_flight < best[1].in_flight:
                    best = (address, replica)
            if best is None:
                return None
            best[1].in_flight += 1
            best[1].used = now
            return best

    def _drop_unused_replicas(self) -> None:
        """Closes channels to replicas no route names any more (scaled down); caller holds the lock."""
        named = {a for route in self._routes.values() for a in route.addresses}
        for address in [a for a, r in self._replicas.items() if a not in named and r.in_flight == 0]:
            self._replicas.pop(address).channel.close()


def _accepted(call: Any) -> bool:
    """Whether the replica said it accepted the call (a finished call: this does not block)."""
    return any(key == ACCEPTED_HEADER for key, _ in call.initial_metadata() or ())


def _channel_to(address: str, route: _Route) -> grpc.Channel:
    """Plaintext, or TLS verified against the route's authority (and only it) and name."""
    if not route.ca_pem:
        return grpc.insecure_channel(address, options=BASE_CHANNEL_OPTIONS)
    credentials = grpc.ssl_channel_credentials(root_certificates=route.ca_pem.encode())
    options = [*BASE_CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", route.server_name)]
    return grpc.secure_channel(address, credentials, options=options)


def is_enabled(explicit: bool | None, environ: dict[str, str] | Any) -> bool:
    """direct_route=... wins; otherwise LAUNCH_DIRECT_ROUTE (default on). A client that talks TLS
    to the server uses only replicas that speak TLS too (DirectRouter's require_tls)."""
    if explicit is not None:
        return explicit
    return environ.get("LAUNCH_DIRECT_ROUTE", "1").lower() not in ("0", "false", "no")
