"""The server's PredictStream over a replica's own port (replica/listener.py), the way the SDK's
direct route streams: one gRPC call per stream, whose HTTP/2 flow control carries a slow reader's
backpressure from the client through this server to the replica, which then stops advancing the
generator (replica/streams.py). A Serve handle's stream does not: Ray's streaming generator keeps
producing for a reader that stopped. Messages are relayed as they come, so values the replica
sent together (PredictStreamResponse.more) stay together.

Used whenever the endpoint has a replica with a port. Before the replica accepts the call (it
sends the launch-accepted header before it starts the generator), a refusal (the replica is full or
stopping, its port does not connect) means the stream was not run, so the caller may use the
Serve handle instead, which also wakes an endpoint scaled to zero. Once accepted, a failure is
the stream's end, never a second run."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from launch.v1 import inference_pb2 as ipb
from launch.v1 import inference_pb2_grpc as igrpc

from launch_server.domain.errors import DeadlineExceeded, EndpointUnavailable, FailedPrecondition, InvalidArgument
from launch_server.serving.replica_channel import replica_channel
from launch_server.wire.headers import ACCEPTED_HEADER, AUTHORIZATION_HEADER

log = logging.getLogger(__name__)
CONNECT_S = 1.0  # a replica port that does not connect within this is skipped for SKIP_S
SKIP_S = 10.0
FULL_SKIP_S = 1.0  # a replica at its concurrency limit is passed over for this long only
IDLE_CLOSE_S = 60.0  # connections to replicas unused this long (scaled away, say) are closed
# What this server reads ahead of its reader on each stream from a replica: a fixed HTTP/2
# stream window instead of one that grows with the measured bandwidth (BDP probing grows it to
# several MiB), so a slow client holds the generator back after about this much in transit here.
STREAM_WINDOW_OPTIONS = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 256 << 10)]
# Refusals that mean "not run": the replica is full (RESOURCE_EXHAUSTED), stopping or unreachable
# (UNAVAILABLE), or does not know the route token yet (UNAUTHENTICATED, a replica just starting).
NOT_RUN = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAUTHENTICATED}
ReplicaRoute = Callable[[str, str], Awaitable[tuple[tuple[str, ...], str] | None]]


class ReplicaStreams:
    """Shared by every streaming endpoint of the server; connections are keyed by address."""

    def __init__(self, replica_route: ReplicaRoute, ca_pem: str) -> None:
        self._replica_route = replica_route
        self._ca_pem = ca_pem
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._in_flight: Counter[str] = Counter()
        self._skip_until: dict[str, float] = {}
        self._last_used: dict[str, float] = {}
        self._next_prune = 0.0
        self._closing: set[asyncio.Future[None]] = set()  # connections closing in the background

    async def open(
        self, endpoint_id: str, app_name: str, request: ipb.PredictStreamRequest, deadline: float | None
    ) -> AsyncIterator[ipb.PredictStreamResponse] | None:
        """The replica's messages, past the point where it accepted the stream; None when no
        replica took it (none has a port, every one is skipped, the chosen one refused before
        accepting): the caller uses the Serve handle. `deadline` (loop time) bounds the stream."""
        try:
            route = await self._replica_route(endpoint_id, app_name)
        except Exception:  # noqa: BLE001 - the GCS lookup failed: nothing ran, use Serve
            log.warning("looking up the replicas of %s failed; using Serve", request.endpoint_name, exc_info=True)
            return None
        if route is None:
            return None
        addresses, token = route
        now = time.monotonic()
        self._prune(now)
        usable = [a for a in addresses if self._skip_until.get(a, 0.0) <= now]
        if not usable:
            return None
        address = min(usable, key=lambda a: self._in_flight[a])
        self._in_flight[address] += 1  # counted before any await, so concurrent streams spread out
        self._last_used[address] = now
        released = False

        def release(*_: object) -> None:
            nonlocal released
            if not released:
                released = True
                self._in_flight[address] -= 1

        try:
            call = await self._start(address, token, request, deadline)
            if call is None:
                release()
                return None
            call.add_done_callback(release)
            return _relay(call, request.endpoint_name)
        except BaseException:
            release()
            raise

    async def _start(
        self, address: str, token: str, request: ipb.PredictStreamRequest, deadline: float | None
    ) -> grpc.aio.UnaryStreamCall | None:
        """The call, once the replica accepted it; None (the address skipped) when it refused."""
        channel = self._channel(address)
        loop = asyncio.get_running_loop()
        if channel.get_state(try_to_connect=True) is not grpc.ChannelConnectivity.READY:
            connect_s = CONNECT_S if deadline is None else max(0.0, min(CONNECT_S, deadline - loop.time()))
            try:
                await asyncio.wait_for(channel.channel_ready(), connect_s)
            except (TimeoutError, grpc.RpcError):
                self._skip(address, request.endpoint_name, "its port did not connect")
                return None
        timeout = None if deadline is None else max(0.0, deadline - loop.time())
        call = igrpc.InferenceServiceStub(channel).PredictStream(
            request, metadata=((AUTHORIZATION_HEADER, f"Bearer {token}"),), timeout=timeout
        )
        try:
            metadata = await call.initial_metadata()
            if any(key == ACCEPTED_HEADER for key, _ in metadata or ()):
                return call
            code = await call.code()  # no acceptance: the call ended with a refusal
            details = await call.details()
        except asyncio.CancelledError:
            call.cancel()
            raise
        if code in NOT_RUN:
            full = code == grpc.StatusCode.RESOURCE_EXHAUSTED
            self._skip(address, request.endpoint_name, f"{code.name}: {details}", FULL_SKIP_S if full else SKIP_S)
            return None
        raise _failed(request.endpoint_name, code, details)

    def _skip(self, address: str, endpoint_name: str, why: str, skip_s: float = SKIP_S) -> None:
        log.warning(
            "replica %s of %s did not take a stream on its direct port (%s); using Serve for %.0f s",
            address,
            endpoint_name,
            why,
            skip_s,
        )
        self._skip_until[address] = time.monotonic() + skip_s

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = replica_channel(address, self._ca_pem, STREAM_WINDOW_OPTIONS)
        return channel

    def _prune(self, now: float) -> None:
        """Closes, in the background, connections unused for IDLE_CLOSE_S with no stream open."""
        if now < self._next_prune:
            return
        self._next_prune = now + IDLE_CLOSE_S / 2
        for address, used in list(self._last_used.items()):
            if now - used > IDLE_CLOSE_S and self._in_flight[address] <= 0:
                for table in (self._last_used, self._skip_until, self._in_flight):
                    table.pop(address, None)
                channel = self._channels.pop(address, None)
                if channel is not None:
                    closing = asyncio.ensure_future(channel.close())
                    self._closing.add(closing)
                    closing.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Server stopping, or the cluster lost: every connection ends (open streams with it)."""
        channels = list(self._channels.values())
        self._channels.clear()
        self._skip_until.clear()
        self._last_used.clear()
        for channel in channels:
            await channel.close()


async def _relay(call: grpc.aio.UnaryStreamCall, endpoint_name: str) -> AsyncIterator[ipb.PredictStreamResponse]:
    """The accepted call's messages; the call is cancelled however the reader stops early."""
    try:
        while True:
            message = await call.read()
            if message is grpc.aio.EOF:
                return
            yield message
    except grpc.aio.AioRpcError as exc:
        raise _failed(endpoint_name, exc.code(), exc.details() or "") from None
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if call.cancelled() and (task is None or not task.cancelling()):
            # The call was cancelled here, not this task: its connection was closed (the server
            # stopping, the cluster lost). For the client that is the endpoint going away.
            raise EndpointUnavailable(f"the connection to the replica streaming {endpoint_name!r} closed") from None
        raise
    finally:
        call.cancel()  # a no-op for a call that ended


def _failed(endpoint_name: str, code: grpc.StatusCode, details: str) -> Exception:
    """The replica's status as the domain error the client gets: the same code where the replica's
    checks speak for the request (its input, the endpoint's type), UNAVAILABLE otherwise."""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded(f"model endpoint {endpoint_name!r} did not finish within the deadline")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument("input", details)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return FailedPrecondition(details)
    return EndpointUnavailable(f"the replica streaming {endpoint_name!r} failed: {code.name}: {details}")
