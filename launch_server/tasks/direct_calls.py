"""The dispatcher's direct route: a single async task goes to one of its endpoint's replicas over
the replica's own InferenceService port (the listener sync endpoints use for the SDK's direct
route, see serving/direct_ingress.py), one gRPC hop instead of a Serve handle call.

Why: on the latency of one async request, the Serve handle call was the largest part the server
controls. The replica counts these calls in its load metric, so autoscaling still sees them.
Tokens are minted here, with the server's secret, for async endpoints only the server reaches
this way (GetModelEndpointRoute refuses async endpoints), so clients cannot bypass the queue.

The replica sends a `launch-accepted` header once a request passed its checks and is about to
run. A call that fails without it never ran the task (a port that does not connect, a refusal, a
replica that just closed its port): the dispatcher uses the Serve handle and skips that address
for a while. A call that fails after it may have run the task: ReplicaDied, retried as a failed
attempt like a Serve replica that died. Channels ping the replica (keepalive), so a call to a
node that vanished fails instead of hanging. Groups of tasks keep using the handle (one call,
predict_many), as do endpoints whose replicas have no port yet (scaling from zero)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

import grpc
from launch.v1 import inference_pb2 as ipb
from launch.v1 import inference_pb2_grpc as igrpc

from launch_server.api.inference_messages import answer_from_result, input_from_request
from launch_server.serving.direct_ingress import ACCEPTED_HEADER
from launch_server.serving.router import Router

log = logging.getLogger(__name__)
CONNECT_S = 1.0  # a replica port that does not connect within this is skipped for SKIP_S
SKIP_S = 10.0
IDLE_CLOSE_S = 60.0  # connections to replicas unused this long (scaled away, say) are closed


CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.keepalive_time_ms", 20_000),  # the replica's server accepts these (direct_ingress)
    ("grpc.keepalive_timeout_ms", 10_000),
]


class DirectCallFailed(Exception):
    """The call failed after the replica accepted the task, for a reason other than the replica
    going away (a reply over the message limit, say): a failed attempt, with that reason."""


class ReplicaDied(Exception):
    """The call failed after the replica accepted the task: it may have run, so this counts as a
    failed attempt (retried, bounded), exactly like a Serve replica that died."""


class DirectCalls:
    def __init__(self, router: Router) -> None:
        self._router = router
        self._connections: dict[str, tuple[grpc.aio.Channel, igrpc.InferenceServiceStub]] = {}
        self._in_flight: Counter[str] = Counter()
        self._skip_until: dict[str, float] = {}
        self._last_used: dict[str, float] = {}
        self._answered: set[str] = set()  # addresses that answered once (logged once each)
        self._next_prune = 0.0

    async def predict(
        self, endpoint_id: str, endpoint_name: str, app_name: str, payload: dict
    ) -> dict[str, object] | None:
        """The replica's answer as the handle would give it, or None when no replica took the call."""
        try:
            route = await self._router.replica_route(endpoint_id, app_name)
        except Exception:  # noqa: BLE001 - the GCS lookup failed: the task has not run, use Serve
            log.warning("looking up the replicas of %s failed; using Serve", endpoint_name, exc_info=True)
            return None
        if route is None:
            return None
        addresses, token = route
        now = time.monotonic()
        usable = [a for a in addresses if self._skip_until.get(a, 0.0) <= now]
        if not usable:
            return None
        address = min(usable, key=lambda a: self._in_flight[a])
        if now >= self._next_prune:
            await self._close_idle(now)
        self._last_used[address] = now
        channel, stub = self._connection(address)
        if channel.get_state(try_to_connect=True) is not grpc.ChannelConnectivity.READY:
            try:
                await asyncio.wait_for(channel.channel_ready(), CONNECT_S)
            except (TimeoutError, grpc.RpcError):
                return self._skip(address, endpoint_name, "its port did not connect")
        request = ipb.PredictRequest(endpoint_name=endpoint_name, input=input_from_request(payload))
        self._in_flight[address] += 1
        try:
            response = await stub.Predict(request, metadata=(("authorization", f"Bearer {token}"),))
        except grpc.aio.AioRpcError as exc:
            if not _accepted(exc):
                return self._skip(address, endpoint_name, f"{exc.code().name}: {exc.details()}")
            self._skip_until[address] = time.monotonic() + SKIP_S
            what = f"replica {address} accepted the task, then the call failed ({exc.code().name}: {exc.details()})"
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                raise ReplicaDied(what) from None
            raise DirectCallFailed(what) from None
        finally:
            self._in_flight[address] -= 1
        if address not in self._answered:
            self._answered.add(address)
            log.info("replica %s answered a task over its direct port", address)
        return answer_from_result(response.result)

    def _skip(self, address: str, endpoint_name: str, why: str) -> None:
        log.warning(
            "replica %s of %s did not take a task on its direct port (%s); using Serve for %.0f s",
            address,
            endpoint_name,
            why,
            SKIP_S,
        )
        self._skip_until[address] = time.monotonic() + SKIP_S

    def _connection(self, address: str) -> tuple[grpc.aio.Channel, igrpc.InferenceServiceStub]:
        connection = self._connections.get(address)
        if connection is None:
            channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
            connection = self._connections[address] = (channel, igrpc.InferenceServiceStub(channel))
        return connection

    async def _close_idle(self, now: float) -> None:
        self._next_prune = now + IDLE_CLOSE_S / 2
        idle = [a for a, used in self._last_used.items() if now - used > IDLE_CLOSE_S and not self._in_flight[a]]
        for address in idle:  # never one with a call in flight: a long task keeps its connection
            del self._last_used[address]
            self._answered.discard(address)
            self._skip_until.pop(address, None)
            self._in_flight.pop(address, None)
            connection = self._connections.pop(address, None)
            if connection is not None:
                await connection[0].close()

    async def close(self) -> None:
        for channel, _ in self._connections.values():
            await channel.close()
        self._connections.clear()


def _accepted(error: grpc.aio.AioRpcError) -> bool:
    """Did the replica accept the task (its ACCEPTED_HEADER arrived) before the call failed?"""
    return any(key == ACCEPTED_HEADER for key, _ in (error.initial_metadata() or ()))
