"""The autoscaling policy every endpoint deploys with: Serve's own queue-length policy, counting
requests on the direct route too.

Serve counts the requests its routers send (handle calls from the server: sync predicts that
came through the server, async tasks, batch chunks). Requests a client sends straight to a
replica's own InferenceService (listener.py) never pass a router, so each replica reports them
as the custom metric below and this policy adds them: desired replicas = all requests in flight /
per_worker, exactly Serve's formula. Serve's wrapper applies the rest (scale from zero, up/down
delays, bounds). The controller imports this module by name, so it must stay importable without
the server's other layers.

The policy also writes what it decided (desired workers, within the endpoint's bounds) to the GCS
under DESIRED_NAMESPACE, keyed by application, so the servers can show "desired" beside running
and starting: Serve's status does not carry it. It writes when the figure changes, at most every
DESIRED_MIN_GAP_S, and every DESIRED_REFRESH_S regardless, from the policy state Serve hands back
on each call; a failed write never fails the decision."""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any

DIRECT_ONGOING_METRIC = "launch_direct_ongoing"
POLICY_IMPORT_PATH = "launch_server.replica.autoscaling:direct_aware_policy"
DESIRED_NAMESPACE = "launch_desired_workers"
DESIRED_MIN_GAP_S = 1.0
DESIRED_REFRESH_S = 300.0  # an idle endpoint costs one write per this; a gone one is forgotten after 3x

logger = logging.getLogger("ray.serve")


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
    state = dict(ctx.policy_state or {})
    bounded = bounded_desired(desired, ctx.capacity_adjusted_min_replicas, ctx.capacity_adjusted_max_replicas)
    now = time.time()
    if publish_due(state, bounded, now):
        state.update(published=bounded, published_at=now)
        try:
            publish_desired(ctx.app_name or "", bounded, now)
        except Exception:  # noqa: BLE001 - see module doc
            logger.warning("Launch autoscaling: writing desired workers to the GCS failed", exc_info=True)
    return desired, state


def bounded_desired(desired: float, min_replicas: int, max_replicas: int) -> int:
    """The whole number of workers the policy asks for, within the endpoint's bounds."""
    return max(min_replicas, min(max_replicas, math.ceil(desired - 1e-9)))


def publish_due(state: dict[str, Any], desired: int, now: float) -> bool:
    """Whether to write `desired` now, given what was last written (the policy state)."""
    last_at = float(state.get("published_at", 0.0))
    if state.get("published") != desired:
        return now - last_at >= DESIRED_MIN_GAP_S
    return now - last_at >= DESIRED_REFRESH_S


def publish_desired(app_name: str, desired: int, now: float) -> None:
    from ray.experimental.internal_kv import _internal_kv_put

    value = json.dumps({"desired": desired, "written": now}).encode()
    _internal_kv_put(app_name.encode(), value, overwrite=True, namespace=DESIRED_NAMESPACE)


def parse_desired(value: bytes | None, now: float, stale_s: float) -> int | None:
    """The desired workers a stored value names, or None when absent, malformed or older than
    `stale_s` (the application is gone, or its controller stopped deciding)."""
    if not value:
        return None
    try:
        data = json.loads(value)
        desired, written = data["desired"], float(data["written"])
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(desired, int) or isinstance(desired, bool) or not 0 <= desired <= 1_000_000:
        return None
    return desired if now - written <= stale_s else None


def drop_desired(app_name: str) -> None:
    """Forgets a deleted application's figure."""
    from ray.experimental.internal_kv import _internal_kv_del

    _internal_kv_del(app_name.encode(), namespace=DESIRED_NAMESPACE)
