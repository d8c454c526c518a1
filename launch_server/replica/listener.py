"""The direct route: a replica answers launch.v1.InferenceService.Predict itself, so a client's
sync predict is one hop (client -> replica) instead of two (client -> server -> Serve handle ->
replica); the same listener serves launch.v1.ReplicaService.RunTasks, the task channel the
server's dispatcher sends async tasks on (task_channel.py). docs/serving.md, "The direct route",
says why and what it costs.

Why our own grpc.aio server rather than Serve's direct-ingress mode: Serve's listens on every
interface without interceptors, needs the client to learn ports from the controller, and its
autoscaler counts only requests inside the method (docs/serving.md). Here the server binds the
node's address, checks a route token on each call, publishes its address in the GCS
(replica_registry) and measures its own requests in flight, which the replica reports to Serve's
autoscaler as a custom metric (autoscaling.direct_aware_policy adds it to Serve's own count).

It runs on the replica loop (replica_loop.py), not on the loop Serve runs the replica on, so it
neither depends on nor stalls Serve's; requests go where their code belongs (calls.py): blocking
predict functions to the replica's predict thread pool, the same one Serve-routed calls use, so
the user's function still sees one call at a time, and async ones on this same loop.

PredictStream answers a streaming endpoint's requests with a message as soon as a value is
yielded (carrying along any values already waiting behind it), under the same checks as Predict;
the endpoint's type (DirectConfig.endpoint_type) decides which of the two a request may use, as it
does on the server."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import asdict, dataclass
from typing import Any

import grpc
from launch.v1 import inference_pb2 as ipb
from launch.v1 import inference_pb2_grpc as igrpc
from launch.v1 import replica_pb2_grpc as rgrpc

from launch_server.domain.endpoints import EndpointType, type_error
from launch_server.domain.errors import DomainError, InvalidArgument, Unauthenticated
from launch_server.domain.requests import InferenceAnswer, InferenceRequest
from launch_server.replica import registry as replica_registry
from launch_server.replica.calls import Calls, PoolCalls
from launch_server.replica.figures_reporter import FIGURES
from launch_server.replica.inflight import InflightGauge
from launch_server.replica.replica_loop import ReplicaLoop
from launch_server.replica.streams import answer_size
from launch_server.replica.task_channel import TaskChannelServicer
from launch_server.wire.headers import ACCEPTED_HEADER, bearer_token
from launch_server.wire.limits import MAX_ANSWER_BYTES, MESSAGE_SIZE_OPTIONS, STREAM_MORE_BYTES, STREAM_MORE_MAX
from launch_server.wire.messages import answer_to_proto, request_of, stream_message
from launch_server.wire.route_tokens import TokenCheck
from launch_server.wire.status import to_status

logger = logging.getLogger("ray.serve")
# Stopping: after the address is withdrawn, callers that still hold it (the server caches
# addresses for 0.5 s, the SDK refreshes routes every couple of seconds) may send a few more
# requests; serve them until DRAIN_QUIET_S passes without one, at most DRAIN_MAX_S (below the
# replica's graceful_shutdown_timeout_s, after which Serve kills the process).
DRAIN_QUIET_S = 1.5
DRAIN_MAX_S = 6.0
# Which endpoint types each call takes on this port. Predict stays open to async endpoints' replicas
# (their port exists for the dispatcher's task channel; a token for it only the server mints).
PREDICT_TYPES = (EndpointType.SYNC, EndpointType.ASYNC)
STREAM_TYPES = (EndpointType.STREAMING,)


@dataclass(frozen=True)
class DirectConfig:
    """What the reconciler tells a replica about its direct route (plain values: it travels in
    the deployment's init args)."""

    endpoint_id: str
    endpoint_name: str
    key_hex: str  # route_tokens.endpoint_key(secret, endpoint_id), hex
    host: str = ""  # "" = the node's IP address as Ray knows it
    max_concurrent_rpcs: int = 100
    # With LAUNCH_REPLICA_TLS=1: the replica certificate and key (wire/replica_tls.py).
    tls_cert_pem: str = ""
    tls_key_pem: str = ""
    # "SYNC", "ASYNC" or "STREAMING" (domain EndpointType): Predict is refused on a streaming
    # endpoint, PredictStream on any other.
    endpoint_type: str = "SYNC"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DirectConfig:
        return cls(**data)


class ReplicaListener:
    """One replica's InferenceService and ReplicaService: start() binds and publishes, stop()
    withdraws and drains (requests on either count in `gauge` and delay the drain alike)."""

    def __init__(
        self,
        config: DirectConfig,
        app_name: str,
        replica_id: str,
        predict: Callable[[InferenceRequest], InferenceAnswer],
        executor: Executor,
        *,
        calls: Calls | None = None,
        loop: ReplicaLoop | None = None,
    ) -> None:
        """`calls` answers requests (calls.ReplicaCalls); without it, `predict` on `executor`
        does. `loop` is the replica loop to serve on; without one, start() makes its own."""
        self.config = config
        self.endpoint_type = EndpointType(config.endpoint_type)  # ValueError for an unknown type
        self.app_name = app_name
        self.replica_id = replica_id
        self.gauge = InflightGauge()
        self.address = ""
        self._calls: Calls = calls if calls is not None else PoolCalls(predict, executor)
        self._replica_loop = loop
        self._own_loop = loop is None
        self._serving: Any = None  # concurrent.futures.Future of _run on the loop
        self.tokens = TokenCheck(bytes.fromhex(config.key_hex), config.endpoint_id)
        self.closing = False  # drained: requests still read on an open task channel are refused
        self.last_request = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> str:
        if self._replica_loop is None:
            self._replica_loop = ReplicaLoop("launch-direct-ingress").start()
        self._serving = self._replica_loop.submit(self._run())
        if not self._started.wait(timeout):
            self._serving.cancel()  # it must not come up later, unseen by the replica and the autoscaler
            self.stop()
            raise RuntimeError(f"the direct route did not start within {timeout:g} s")
        if self._error is not None:
            raise RuntimeError(f"the direct route could not start: {self._error}") from self._error
        return self.address

    def stop(self) -> None:
        """Withdraws the address (routes stop naming it), answers what is in flight and what
        clients with a not-yet-refreshed route still send (DRAIN_QUIET_S without a new request,
        at most DRAIN_MAX_S), then closes the port. Serve drains only the requests it routed,
        so without this a scale-down would cut off direct requests that are still running."""
        loop, stop = self._loop, self._stop
        if loop is None or stop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(stop.set)
        except RuntimeError:
            return
        replica_loop = self._replica_loop
        if replica_loop is None or replica_loop.in_loop():
            return  # asked from the loop itself: waiting here would block the drain it waits for
        if self._serving is not None:
            concurrent.futures.wait((self._serving,), timeout=DRAIN_MAX_S + 3.0)
        if self._own_loop:
            replica_loop.stop()

    async def _run(self) -> None:
        try:
            await self._serve()
        except BaseException as exc:  # noqa: BLE001 - reported to start() or logged; never kills the replica
            if not self._started.is_set():
                self._error = exc
                self._started.set()
            elif not isinstance(exc, asyncio.CancelledError):  # cancelled: the replica loop stopped
                logger.exception("Launch direct route stopped with an error")

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = grpc.aio.server(
            options=[
                *MESSAGE_SIZE_OPTIONS,
                ("grpc.so_reuseport", 0),
                # The dispatcher's channels ping every 20 s during long tasks (keepalive), so a
                # lost node is noticed; accept those pings instead of answering GOAWAY.
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.http2.max_ping_strikes", 0),
            ],
            maximum_concurrent_rpcs=self.config.max_concurrent_rpcs,
        )
        igrpc.add_InferenceServiceServicer_to_server(_Servicer(self), server)
        rgrpc.add_ReplicaServiceServicer_to_server(TaskChannelServicer(self), server)
        host = self.config.host or _node_ip()
        bind = f"{_bracket(host)}:0"
        if self.config.tls_cert_pem:
            credentials = grpc.ssl_server_credentials(
                [(self.config.tls_key_pem.encode(), self.config.tls_cert_pem.encode())]
            )
            port = server.add_secure_port(bind, credentials)
        else:
            port = server.add_insecure_port(bind)
        if port == 0:
            raise RuntimeError(f"cannot bind a port on {host}")
        await server.start()
        self.address = f"{_bracket(host)}:{port}"
        loop = asyncio.get_running_loop()
        await self._refresh_revoked()  # before the address is published: no token slips through
        try:
            await loop.run_in_executor(None, replica_registry.publish, self.app_name, self.replica_id, self.address)
        except BaseException:
            await server.stop(None)
            raise
        logger.info("Launch direct route: InferenceService on %s", self.address)
        self._started.set()
        try:
            while not self._stop.is_set():
                try:
                    await asyncio.wait_for(self._stop.wait(), replica_registry.HEARTBEAT_S)
                except TimeoutError:
                    try:
                        await loop.run_in_executor(
                            None, replica_registry.publish, self.app_name, self.replica_id, self.address
                        )
                    except Exception:  # noqa: BLE001 - a missed heartbeat only ages the entry
                        logger.warning("Launch direct route: heartbeat to the GCS failed", exc_info=True)
                    await self._refresh_revoked()
        finally:
            try:
                await loop.run_in_executor(None, replica_registry.withdraw, self.app_name, self.replica_id)
            except Exception:  # noqa: BLE001 - the entry ages out anyway
                pass
            self.last_request = time.monotonic()  # the quiet period starts at the withdrawal
            await self._drain()
            self.closing = True
            await server.stop(1.0)

    async def _refresh_revoked(self) -> None:
        """Reads which API keys the servers revoked lately (replica_registry) and refuses their
        route tokens from now on; a failed or malformed read keeps the previous list."""
        prefix = replica_registry.app_prefix(self.app_name, self.config.endpoint_id)
        try:
            revoked = await asyncio.get_running_loop().run_in_executor(None, replica_registry.revoked_keys, prefix)
        except Exception:  # noqa: BLE001 - the next heartbeat reads again
            logger.warning("Launch direct route: reading revoked API keys from the GCS failed", exc_info=True)
            return
        if revoked is not None:
            self.tokens.set_revoked(revoked)

    async def _drain(self) -> None:
        deadline = time.monotonic() + DRAIN_MAX_S
        while time.monotonic() < deadline:
            if self.gauge.current == 0 and time.monotonic() - self.last_request >= DRAIN_QUIET_S:
                return
            await asyncio.sleep(0.05)

    # ---- requests ------------------------------------------------------------------------------

    def token_of(self, context: Any) -> tuple[str, str | None]:
        """The call's route token and, when it is not good, why (for UNAUTHENTICATED)."""
        try:
            token = bearer_token(context.invocation_metadata())
        except Unauthenticated:
            token = ""  # why_not says what a route token looks like
        return token, self.tokens.why_not(token)

    def refusal(self, token: str) -> str | None:
        """Why a request read on a task channel is not taken now, or None: the replica is
        stopping, is at its concurrency limit, or the channel's token has expired since it opened
        (tokens expire, so it is checked per request: a dict lookup)."""
        if self.closing:
            return "the replica is stopping"
        if self.gauge.current >= self.config.max_concurrent_rpcs:
            return f"the replica is at its concurrency limit ({self.config.max_concurrent_rpcs})"
        return self.tokens.why_not(token)

    async def run(
        self, request: InferenceRequest, timeout_s: float | None = None, patience_s: float | None = None
    ) -> ipb.InferenceResult:
        """One request where its code belongs (calls.py): blocking code on the replica's predict
        thread pool, the one Serve-routed calls use, async code on the replica loop; given up past
        `timeout_s` (a FAILURE answer) or when the awaiting task is cancelled."""
        return answer_to_proto(await self._calls.answer(request, timeout_s, patience_s))

    def _checked(self, request: Any, accepted: tuple[EndpointType, ...]) -> InferenceRequest:
        """The request's input after the checks Predict and PredictStream share: the endpoint's
        name, then its type (the call meant for it, as on the server), then the input."""
        if request.endpoint_name != self.config.endpoint_name:
            raise InvalidArgument(
                "endpoint_name",
                f"this replica serves {self.config.endpoint_name!r}, not {request.endpoint_name!r}",
            )
        wrong_type = type_error(self.config.endpoint_name, self.endpoint_type, accepted)
        if wrong_type is not None:
            raise wrong_type
        if accepted == STREAM_TYPES and request.HasField("input") and request.input.return_pickled:
            raise InvalidArgument("input.return_pickled", "must be false: a stream answers each value as JSON text")
        return request_of(request)

    async def _admit(self, request: Any, context: Any, accepted: tuple[EndpointType, ...]) -> InferenceRequest:
        _, why = self.token_of(context)
        if why is not None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, why)
        try:
            inference = self._checked(request, accepted)
        except DomainError as exc:
            await context.abort_with_status(to_status(exc))
        await context.send_initial_metadata(((ACCEPTED_HEADER, "1"),))
        return inference

    async def predict(self, request: Any, context: Any) -> Any:
        self.last_request = time.monotonic()
        self.gauge.change(1)
        outcome, started = "refused", FIGURES.started()
        try:
            inference = await self._admit(request, context, PREDICT_TYPES)
            outcome = "cancelled"
            # The caller's deadline, so that no batch waits it out (batcher.py).
            result = await self.run(inference, patience_s=context.time_remaining())
            outcome = "success" if result.state == ipb.RESULT_STATE_SUCCESS else "failure"
            return ipb.PredictResponse(result=result)
        finally:
            self.gauge.change(-1)
            FIGURES.finished("sync", "direct", outcome, started)

    async def predict_stream(self, request: Any, context: Any) -> None:
        """A message as soon as the stream has an answer, carrying the answers already waiting
        behind it; the open stream counts as one request in flight. When the caller goes away
        gRPC cancels this call, and closing the stream closes the user's generator."""
        self.last_request = time.monotonic()
        self.gauge.change(1)
        stream = None
        outcome, started = "refused", FIGURES.started()
        first, last = True, None
        try:
            inference = await self._admit(request, context, STREAM_TYPES)
            outcome = "cancelled"
            # Only now, with the header sent: a caller that lost the call without it knows the
            # generator never started, and may send the stream elsewhere.
            stream = self._calls.stream(inference)
            async for answer in stream:
                if first:
                    first = False
                    FIGURES.observe("first_chunk", time.perf_counter() - started)
                # Whatever else is made by now goes along: a sender that lags behind the
                # generator catches up in fewer messages, and none waits for more to come.
                budget = min(STREAM_MORE_BYTES, MAX_ANSWER_BYTES - answer_size(answer))
                more = stream.take_ready(STREAM_MORE_MAX, budget)
                await context.write(stream_message(answer, more))
                last = more[-1] if more else answer
            # A raise in the user's generator is its last answer, a FAILURE.
            outcome = "success" if last is None or last.succeeded else "failure"
        finally:
            if stream is not None:
                await stream.aclose()
            self.gauge.change(-1)
            FIGURES.finished("stream", "direct", outcome, started)


def _node_ip() -> str:
    import ray

    return ray.util.get_node_ip_address()


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class _Servicer(igrpc.InferenceServiceServicer):
    def __init__(self, ingress: ReplicaListener) -> None:
        self._ingress = ingress

    async def Predict(self, request: Any, context: Any) -> Any:
        return await self._ingress.predict(request, context)

    async def PredictStream(self, request: Any, context: Any) -> None:
        await self._ingress.predict_stream(request, context)
