"""ModelEndpointService servicer."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator

import grpc
from launch.v1 import model_endpoint_pb2 as epb
from launch.v1 import model_endpoint_pb2_grpc as egrpc

from launch_server.api.auth import key_id, owner
from launch_server.api.convert import (
    changes_from_mask,
    endpoint_to_proto,
    event_to_proto,
    log_line_to_proto,
    settings_from_proto,
    stats_to_proto,
)
from launch_server.domain.endpoints import Endpoint, EndpointService, EndpointStatus
from launch_server.domain.errors import InvalidArgument, NotServedHere
from launch_server.domain.live_endpoints import LiveEndpoints
from launch_server.domain.validation import validate_name
from launch_server.observability.live_stats import DEFAULT_WINDOW_S, MAX_WINDOW_S
from launch_server.serving.endpoint_stats import MAX_NAMES, EndpointStatsReader
from launch_server.serving.router import Router
from launch_server.serving.runtime_logs import RuntimeLogs
from launch_server.wire.replica_tls import SERVER_NAME as REPLICA_SERVER_NAME

MAX_SINCE_S = 7 * 24 * 3600.0


class ModelEndpointServicer(egrpc.ModelEndpointServiceServicer):
    def __init__(
        self,
        endpoints: EndpointService,
        live: LiveEndpoints | None,
        router: Router | None = None,
        runtime_logs: RuntimeLogs | None = None,
        stats: EndpointStatsReader | None = None,
    ) -> None:
        self._endpoints = endpoints
        self._live = live  # None without a serving layer
        self._router = router
        self._runtime_logs = runtime_logs
        self._stats = stats

    def _proto(self, endpoint: Endpoint) -> epb.ModelEndpoint:
        """Adds the live worker counts the serving layer last saw (no Ray call on the RPC path)."""
        if self._live is not None and not self._live.ready and endpoint.status is EndpointStatus.READY:
            # Just started: READY in the database is what the last server saw, not yet confirmed.
            endpoint = endpoint.replace(
                status=EndpointStatus.UPDATE_IN_PROGRESS,
                status_reason="the server is starting; checking that the endpoint is still running",
            )
        live = self._live.route(endpoint.endpoint_id) if self._live is not None else None
        if live is None:
            return endpoint_to_proto(endpoint)
        return endpoint_to_proto(endpoint, live.available_workers, live.unavailable_workers)

    async def CreateModelEndpoint(
        self, request: epb.CreateModelEndpointRequest, context: grpc.aio.ServicerContext
    ) -> epb.CreateModelEndpointResponse:
        if not request.HasField("endpoint"):
            raise InvalidArgument("endpoint", "is required")
        settings = settings_from_proto(request.endpoint)
        endpoint = await self._endpoints.create(owner(), request.endpoint.name, settings, request.request_id)
        return epb.CreateModelEndpointResponse(endpoint=self._proto(endpoint))

    async def GetModelEndpoint(
        self, request: epb.GetModelEndpointRequest, context: grpc.aio.ServicerContext
    ) -> epb.GetModelEndpointResponse:
        return epb.GetModelEndpointResponse(endpoint=self._proto(await self._endpoints.get(owner(), request.name)))

    async def ListModelEndpoints(
        self, request: epb.ListModelEndpointsRequest, context: grpc.aio.ServicerContext
    ) -> epb.ListModelEndpointsResponse:
        page = await self._endpoints.list(owner(), request.page_size, request.page_token)
        return epb.ListModelEndpointsResponse(
            endpoints=[self._proto(e) for e in page.items], next_page_token=page.next_page_token
        )

    async def UpdateModelEndpoint(
        self, request: epb.UpdateModelEndpointRequest, context: grpc.aio.ServicerContext
    ) -> epb.UpdateModelEndpointResponse:
        changes = changes_from_mask(request.endpoint, list(request.update_mask.paths))
        endpoint = await self._endpoints.update(owner(), request.endpoint.name, changes)
        return epb.UpdateModelEndpointResponse(endpoint=self._proto(endpoint))

    async def DeleteModelEndpoint(
        self, request: epb.DeleteModelEndpointRequest, context: grpc.aio.ServicerContext
    ) -> epb.DeleteModelEndpointResponse:
        await self._endpoints.delete(owner(), request.name)
        return epb.DeleteModelEndpointResponse(deleted=True)

    async def ReadModelEndpointCreationLogs(
        self, request: epb.ReadModelEndpointCreationLogsRequest, context: grpc.aio.ServicerContext
    ) -> epb.ReadModelEndpointCreationLogsResponse:
        endpoint, events = await self._endpoints.events(owner(), request.name)
        logs = ""
        if self._live is not None:
            from launch_server.serving.logs import endpoint_logs

            bundle_has_requirements = any("installing requirements" in e.message for e in events)
            logs = await asyncio.to_thread(endpoint_logs, self._live.app_name(endpoint), bundle_has_requirements)
        return epb.ReadModelEndpointCreationLogsResponse(events=[event_to_proto(e) for e in events], logs=logs)

    async def GetModelEndpointRoute(
        self, request: epb.GetModelEndpointRouteRequest, context: grpc.aio.ServicerContext
    ) -> epb.GetModelEndpointRouteResponse:
        validate_name("name", request.name)
        if self._router is None:
            # No serving layer here: nothing to route to, and Predict says why.
            return epb.GetModelEndpointRouteResponse(refresh_after_seconds=60.0)
        route = await self._router.route(owner(), request.name, key_id())
        response = epb.GetModelEndpointRouteResponse(
            replica_addresses=list(route.addresses),
            route_token=route.token,
            refresh_after_seconds=route.refresh_after_s,
            replica_ca_pem=route.ca_pem,
            replica_server_name=REPLICA_SERVER_NAME if route.ca_pem else "",
        )
        if route.expires:
            response.route_token_expire_time.FromSeconds(route.expires)
        return response

    async def StreamModelEndpointLogs(
        self, request: epb.StreamModelEndpointLogsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[epb.StreamModelEndpointLogsResponse]:
        validate_name("name", request.name)
        since_s = request.since_seconds
        if not math.isfinite(since_s) or not 0 <= since_s <= MAX_SINCE_S:
            raise InvalidArgument("since_seconds", f"must be between 0 and {MAX_SINCE_S:.0f} (7 days)")
        endpoint = await self._endpoints.get(owner(), request.name)  # NOT_FOUND for another owner's
        if self._live is None or self._runtime_logs is None:
            raise NotServedHere("runtime logs need the serving layer (LAUNCH_SERVING=1)")
        since = time.time() - since_s if since_s else 0.0
        live = self._live
        lines = self._runtime_logs.lines(
            live.app_name(endpoint), since, request.follow, lambda: live.endpoint(endpoint.endpoint_id) is not None
        )
        async for message in lines:
            yield epb.StreamModelEndpointLogsResponse(lines=[log_line_to_proto(line) for line in message])

    async def GetModelEndpointStats(
        self, request: epb.GetModelEndpointStatsRequest, context: grpc.aio.ServicerContext
    ) -> epb.GetModelEndpointStatsResponse:
        names = list(request.names)
        if len(names) > MAX_NAMES:
            raise InvalidArgument("names", f"at most {MAX_NAMES} names, not {len(names)}")
        for name in names:
            validate_name("names", name)
        window_s = request.window_seconds or DEFAULT_WINDOW_S
        if not math.isfinite(window_s) or not 0 < window_s <= MAX_WINDOW_S:
            raise InvalidArgument("window_seconds", f"must be between 0 and {MAX_WINDOW_S:.0f}")
        if self._stats is None:
            raise NotServedHere(
                "live endpoint figures need the serving layer and metrics (LAUNCH_SERVING=1, LAUNCH_METRICS=1)"
            )
        found = self._stats.of(owner(), names, window_s)
        covered = max((s.window.seconds for s in found), default=0.0)
        return epb.GetModelEndpointStatsResponse(endpoints=[stats_to_proto(s) for s in found], window_seconds=covered)
