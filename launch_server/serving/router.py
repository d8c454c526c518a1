"""The predict paths through the server, sync and streaming: finds the endpoint's Serve
application in the live view (no database round trip), holds one DeploymentHandle per
application, and awaits the call on the server's asyncio loop within the caller's deadline,
cancelling it in Ray when the deadline passes or the caller goes away. Streams go to a replica's
own port when they can (replica_streams.py), for its flow control."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable, Collection
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, TypeVar

from launch.v1 import inference_pb2 as ipb

from launch_server.domain.endpoints import ANSWERED_TYPES, EndpointRepository, EndpointType, type_error
from launch_server.domain.errors import (
    DeadlineExceeded,
    EndpointUnavailable,
    FailedPrecondition,
    NotFound,
    ResourceExhausted,
)
from launch_server.domain.live_endpoints import LiveEndpoints, LiveRoute
from launch_server.domain.requests import InferenceAnswer, InferenceRequest
from launch_server.replica import registry as replica_registry
from launch_server.serving.ray_gate import gate
from launch_server.serving.replica_streams import ReplicaStreams
from launch_server.settings import Settings
from launch_server.wire.messages import request_to_proto, stream_message
from launch_server.wire.route_tokens import SERVER_KEY_ID, mint

T = TypeVar("T")
PREDICT_TYPES = (EndpointType.SYNC,)
STREAM_TYPES = (EndpointType.STREAMING,)


@dataclass(frozen=True)
class DirectRoute:
    """Where a sync or streaming endpoint's replicas answer directly (see replica.listener); no
    addresses means "send Predict (or PredictStream) to the server"."""

    addresses: tuple[str, ...]
    token: str
    expires: int  # unix seconds; 0 with no token
    refresh_after_s: float
    ca_pem: str = ""  # set when replica ports speak TLS: the authority their certificates chain to


# Registry reads are one GCS round trip; many clients refreshing at once share one per interval.
ADDRESS_CACHE_S = 0.5
HANDLE_SHUTDOWN_S = 2.0
log = logging.getLogger(__name__)


class Router:
    def __init__(self, settings: Settings, live: LiveEndpoints, endpoints: EndpointRepository) -> None:
        self._settings = settings
        self._live = live
        self._endpoints = endpoints
        self._handles: dict[str, Any] = {}
        self._addresses: dict[str, tuple[float, tuple[str, ...]]] = {}
        self._tokens: dict[str, tuple[str, int]] = {}  # endpoint id -> (token, expiry), server's own calls
        self._lookups: dict[str, asyncio.Future[tuple[str, ...]]] = {}  # registry reads in flight
        self._streams = ReplicaStreams(self.replica_route, settings.replica_tls_ca_pem)

    async def route(self, owner: str, name: str, key_id: str) -> DirectRoute:
        """The direct route for a sync or streaming endpoint of this owner: its running replicas'
        addresses and a token for them, naming the API key `key_id` that asked (so revoking it
        stops it). NOT_FOUND and FAILED_PRECONDITION (async) as for Predict; an endpoint that
        cannot take a direct request now (not serving, zero workers, route off) gets no addresses,
        so the client sends Predict (PredictStream) here and gets the full answer or error."""
        settings = self._settings
        empty = DirectRoute((), "", 0, settings.route_refresh_s)
        try:
            endpoint_id, live = await self._resolve(owner, name, ANSWERED_TYPES)
        except EndpointUnavailable:
            return empty
        if not settings.direct_route:
            return empty
        addresses = await self._replica_addresses(live.app_name)
        if not addresses:
            return empty
        token, expires = mint(settings.route_secret.encode(), endpoint_id, settings.route_token_ttl_s, key_id=key_id)
        return DirectRoute(addresses, token, expires, settings.route_refresh_s, settings.replica_tls_ca_pem)

    @property
    def replica_ca_pem(self) -> str:
        """The authority replica ports' certificates chain to; empty when they speak plaintext."""
        return self._settings.replica_tls_ca_pem

    async def replica_route(self, endpoint_id: str, app_name: str) -> tuple[tuple[str, ...], str] | None:
        """For the server's own calls (the dispatcher's, to async endpoints): the running replicas'
        direct addresses and a token for them, or None when the route is off or none is running.
        The token is reused until half its life is left."""
        settings = self._settings
        if not settings.direct_route:
            return None
        addresses = await self._replica_addresses(app_name)
        if not addresses:
            return None
        token, expires = self._tokens.get(endpoint_id, ("", 0))
        if expires - time.time() < settings.route_token_ttl_s / 2:
            token, expires = mint(
                settings.route_secret.encode(), endpoint_id, settings.route_token_ttl_s, key_id=SERVER_KEY_ID
            )
            self._tokens[endpoint_id] = (token, expires)
        return addresses, token

    async def _replica_addresses(self, app_name: str) -> tuple[str, ...]:
        """Cached for ADDRESS_CACHE_S; callers that find the cache stale share one lookup."""
        now = time.monotonic()
        cached = self._addresses.get(app_name)
        if cached is not None and cached[0] > now:
            return cached[1]
        lookup = self._lookups.get(app_name)
        if lookup is None:
            lookup = self._lookups[app_name] = asyncio.ensure_future(self._lookup(app_name))
            lookup.add_done_callback(lambda _: self._lookups.pop(app_name, None))
        return await asyncio.shield(lookup)

    async def _lookup(self, app_name: str) -> tuple[str, ...]:
        routes = await asyncio.to_thread(_gated, replica_registry.lookup, app_name)
        addresses = tuple(r.address for r in routes)
        self._addresses[app_name] = (time.monotonic() + ADDRESS_CACHE_S, addresses)
        return addresses

    async def handle(self, app_name: str) -> Any:
        """The application's Serve handle; RayUnavailable while the cluster is lost (ray_gate)."""
        gate.check()
        handle = self._handles.get(app_name)
        if handle is None:
            from ray import serve

            handle = await asyncio.to_thread(_gated, serve.get_app_handle, app_name)
            self._handles[app_name] = handle
        return handle

    def forget(self, app_name: str) -> None:
        self._handles.pop(app_name, None)

    async def forget_all(self) -> None:
        """The cluster is gone: its handles and replica addresses mean nothing on the next one.
        Each handle's Serve router runs on this loop and keeps pushing metrics to the dead
        controller until it is shut down (no Ray call; bounded regardless)."""
        handles = list(self._handles.values())
        self._handles.clear()
        await self._streams.close()
        self._addresses.clear()
        self._tokens.clear()
        for handle in handles:
            try:
                await asyncio.wait_for(handle.shutdown_async(), HANDLE_SHUTDOWN_S)
            except Exception:  # noqa: BLE001 - a handle of a dead cluster is dropped regardless
                log.debug("shutting down a Serve handle of the lost cluster failed", exc_info=True)

    async def _unavailable_reason(
        self, owner: str, name: str, accepted: Collection[EndpointType]
    ) -> EndpointUnavailable | NotFound | FailedPrecondition:
        """Slow path for names the in-memory view does not know (yet): one database read."""
        endpoint = await asyncio.to_thread(self._endpoints.get, owner, name)
        if endpoint is None:
            return NotFound("model endpoint", name)
        wrong_type = type_error(name, endpoint.settings.endpoint_type, accepted)
        if wrong_type is not None:
            return wrong_type
        reason = f": {endpoint.status_reason}" if endpoint.status_reason else ""
        return EndpointUnavailable(f"model endpoint {name!r} is {endpoint.status.value}{reason}")

    async def _resolve(self, owner: str, name: str, accepted: Collection[EndpointType]) -> tuple[str, LiveRoute]:
        """The owner's endpoint by name and its deployment, when it serves now and its type is
        one of `accepted`; otherwise the error a caller gets: NotFound, FailedPrecondition (a
        call its type does not take: tasks for async endpoints, PredictStream for streaming ones)
        or EndpointUnavailable saying the endpoint's status and why."""
        endpoint = self._live.endpoint_for(owner, name)
        if endpoint is None:
            raise await self._unavailable_reason(owner, name, accepted)
        wrong_type = type_error(name, endpoint.settings.endpoint_type, accepted)
        if wrong_type is not None:
            raise wrong_type
        live = self._live.route(endpoint.endpoint_id)
        if live is None:
            raise await self._unavailable_reason(owner, name, accepted)
        if not live.serving:
            reason = f": {live.reason}" if live.reason else ""
            raise EndpointUnavailable(f"model endpoint {name!r} is {live.status.value}{reason}")
        return endpoint.endpoint_id, live

    async def _live_route(
        self, owner: str, name: str, timeout: float | None, accepted: Collection[EndpointType]
    ) -> tuple[str, LiveRoute]:
        """The endpoint a request goes to and its deployment, shared by Predict and PredictStream."""
        if not self._live.ready and not await self._live.wait_ready(min(timeout or 30.0, 30.0)):
            # The server just started: a request waits (within its deadline) for the first pass,
            # so a restart looks like a slow request rather than an error.
            raise EndpointUnavailable(f"the serving layer is starting; retry shortly ({self._live.error})")
        return await self._resolve(owner, name, accepted)

    async def _serving_handle(
        self, owner: str, name: str, timeout: float | None, accepted: Collection[EndpointType]
    ) -> Any:
        _, live = await self._live_route(owner, name, timeout, accepted)
        return await self.handle(live.app_name)

    async def predict(self, owner: str, name: str, request: InferenceRequest, timeout: float | None) -> InferenceAnswer:
        handle = await self._serving_handle(owner, name, timeout, PREDICT_TYPES)
        # The deadline travels along so that a batching replica never waits it out (batcher.py).
        response = handle.remote(request, patience_s=timeout)
        try:
            async with asyncio.timeout(timeout):  # no extra task per request, unlike wait_for
                return await response
        except TimeoutError:
            response.cancel()
            raise DeadlineExceeded(f"model endpoint {name!r} did not answer within the deadline") from None
        except asyncio.CancelledError:
            response.cancel()  # the client went away: stop the work in Ray too
            raise
        except Exception as exc:  # noqa: BLE001 - Ray's errors are translated, never leaked
            raise _translate(name, exc) from None

    async def predict_stream(
        self, owner: str, name: str, request: InferenceRequest, timeout: float | None
    ) -> AsyncGenerator[ipb.PredictStreamResponse, None]:
        """The messages of one request on a streaming endpoint, each as the replica sends it.
        Over a replica's own port when one has a port (replica_streams.py: gRPC flow control holds
        the generator back for a slow reader), otherwise through the Serve handle. Either way a
        message is read only when the caller asks for the next, so nothing is buffered here, and
        the deadline bounds the whole stream; the call (and with it the generator in the replica)
        is cancelled when the deadline passes, the caller stops early or goes away
        (CancelledError, or this generator closed), or the path fails."""
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        endpoint_id, live = await self._live_route(owner, name, timeout, STREAM_TYPES)
        message = ipb.PredictStreamRequest(endpoint_name=name, input=request_to_proto(request))
        relayed = await self._streams.open(endpoint_id, live.app_name, message, deadline)
        if relayed is not None:
            async with aclosing(relayed):
                async for reply in relayed:
                    yield reply
            return
        answers = self._serve_stream(name, await self.handle(live.app_name), request, deadline)
        async with aclosing(answers):
            async for answer in answers:
                yield stream_message(answer, [])

    async def _serve_stream(
        self, name: str, handle: Any, request: InferenceRequest, deadline: float | None
    ) -> AsyncGenerator[InferenceAnswer, None]:
        """The answers of the Serve handle's stream (LaunchReplica.predict_stream)."""
        # No timeout_s for the replica: the deadline is kept here, so passing it always answers
        # DEADLINE_EXCEEDED (never a replica's FAILURE racing it), and cancelling closes the generator.
        stream = handle.options(stream=True).predict_stream.remote(request)
        finished = False
        try:
            while True:
                try:
                    # Bounds only the wait for the next value (this generator's own await): while
                    # a value is being sent, gRPC's deadline on the call bounds the rest.
                    async with asyncio.timeout_at(deadline):
                        answer = await stream.__anext__()
                except StopAsyncIteration:
                    finished = True
                    return
                except TimeoutError:
                    raise DeadlineExceeded(f"model endpoint {name!r} did not finish within the deadline") from None
                except Exception as exc:  # noqa: BLE001 - Ray's errors are translated, never leaked
                    raise _translate(name, exc) from None
                yield answer
        finally:
            if not finished:
                stream.cancel()  # stop the work in Ray, whatever ended the stream early

    async def close(self) -> None:
        """Server stopping: the connections to replicas end."""
        await self._streams.close()


def _gated(fn: Callable[..., T], *args: Any) -> T:
    """Runs a blocking Ray call through the gate (in a worker thread)."""
    with gate.held():
        return fn(*args)


def _translate(name: str, exc: Exception) -> Exception:
    kind = type(exc).__name__
    if kind == "BackPressureError":
        return ResourceExhausted(f"model endpoint {name!r} is at capacity: {exc}")
    if kind in ("ActorDiedError", "RayActorError", "ActorUnavailableError"):
        return EndpointUnavailable(f"the worker serving {name!r} died while running the request; retry it")
    if kind in ("RequestCancelledError", "TaskCancelledError"):
        return EndpointUnavailable(f"the request to {name!r} was cancelled")
    return EndpointUnavailable(f"model endpoint {name!r} failed to run the request: {kind}: {exc}")
