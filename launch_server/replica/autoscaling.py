"""The autoscaling policy every endpoint deploys with: Serve's own queue-length policy, counting
requests on the direct route too.

Serve counts the requests its routers send (handle calls from the server: sync predicts that
came through the server, async tasks, batch chunks). Requests a client sends straight to a
replica's own InferenceService (listener.py) never pass a router, so each replica reports them
as the custom metric below and this policy adds them: desired replicas = all requests in flight /
per_worker, exactly Serve's formula. Serve's wrapper applies the rest (scale from zero, up/down
delays, bounds). The controller imports this module by name, so it must stay importable without
the server's other layers."""

from __future__ import annotations

import math
from typing import Any

DIRECT_ONGOING_METRIC = "launch_direct_ongoing"
POLICY_IMPORT_PATH = "launch_server.replica.autoscaling:direct_aware_policy"


def desired_replicas(
    current: int, target: int, serve_requests: float, direct_requests: float, target_per_replica: float
) -> float:
    """Serve's queue-length rule over both kinds of requests."""
    if current == 0:
        return target
    return (serve_requests + direct_requests) / max(target_per_replica, 1e-9)


def direct_aware_policy(ctx: Any) -> tuple[float, dict[str, Any]]:
    """Serve custom policy (AutoscalingContext -> desired replicas, policy state)."""
    metrics = ctx.aggregated_metrics or {}
    direct = sum(float(v) for v in metrics.get(DIRECT_ONGOING_METRIC, {}).values() if not math.isnan(float(v)))
    desired = desired_replicas(
        ctx.current_num_replicas,
        ctx.target_num_replicas,
        float(ctx.total_num_requests or 0.0),
        direct,
        ctx.config.get_target_ongoing_requests(),
    )
    return desired, {}
