"""LaunchClient: the documented Scale Launch API, over the launch.v1 gRPC contract.

One flat class for users, put together from one part per concern: bundles (bundles_api),
endpoints (endpoints_api), requests and tasks (tasks_api), batch jobs (batch_jobs_api) and the
self-hosted hooks (self_hosted). This module only builds it: the Connection every call goes
through, and the endpoint calls it shares with the endpoint objects."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from .batch_jobs_api import BatchJobsApi
from .bundles_api import BundlesApi
from .connection import Connection
from .direct_route import DirectRouter, is_enabled
from .endpoint_calls import EndpointCalls, fetch_route
from .endpoints_api import EndpointsApi
from .self_hosted import SelfHostedHooks
from .tasks_api import TasksApi


class LaunchClient(SelfHostedHooks, BundlesApi, EndpointsApi, TasksApi, BatchJobsApi):
    """Scale Launch client. `api_key` and `endpoint` default to $LAUNCH_API_KEY and
    $LAUNCH_ENDPOINT (else localhost:50051)."""

    def __init__(
        self,
        api_key: str | None = None,
        endpoint: str | None = None,
        self_hosted: bool = False,
        *,
        timeout: float = 120.0,
        direct_route: bool | None = None,
    ) -> None:
        """direct_route: send sync predicts straight to the endpoint's replicas when the server
        offers a route (default: on unless LAUNCH_DIRECT_ROUTE=0); see launch.direct_route."""
        self.connection = Connection(api_key, endpoint, timeout=timeout)
        direct = None
        if is_enabled(direct_route, os.environ):
            # Over TLS to the server, replicas are used only when they speak TLS too, unless the
            # caller asked for the direct route explicitly (accepting plaintext replicas).
            require_tls = self.connection.secure and direct_route is None
            direct = DirectRouter(functools.partial(fetch_route, self.connection), require_tls=require_tls)
        self.endpoint_calls = EndpointCalls(self.connection, direct)
        self.self_hosted = self_hosted
        self.upload_bundle_fn: Callable[[bytes, Any], None] | None = None
        self.upload_batch_csv_fn: Callable[[str, Any], None] | None = None
        self.bundle_location_fn: Callable[[], Any] | None = None
        self.batch_csv_location_fn: Callable[[], Any] | None = None
        self.endpoint_auth_decorator_fn: Callable[[dict[str, Any]], dict[str, Any]] = lambda x: x

    @property
    def _direct(self) -> DirectRouter | None:
        """The direct route's router, None when it is off."""
        return self.endpoint_calls.direct

    def __repr__(self) -> str:
        return f"LaunchClient(connection={self.connection!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LaunchClient) and self.connection == other.connection

    def __hash__(self) -> int:
        return hash(self.connection)
