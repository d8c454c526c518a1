"""Carries a replica's figures (observability/figures.py) to the servers through Ray's GCS
key-value store, under `{app}/{replica id}` in FIGURES_NAMESPACE, rewritten every PUBLISH_S.

Why the GCS and not a scrape port per replica or Ray's metrics agents: every replica, on any node
and of any endpoint kind (batch endpoints have no port of their own), already reaches the GCS, as
the route registry does (registry.py); each server reads one namespace to cover the whole
deployment, so Prometheus scrapes one place; and the labels stay ours (endpoint, owner), which the
servers add, since a replica does not know its owner. Ray's agents would also need the dashboard
processes, which local mode leaves off to save memory.

The process holds one replica (a Ray actor), so FIGURES is process-wide, like a metrics registry;
a replica that stops writes once more, so its last requests are counted."""

from __future__ import annotations

import asyncio
import json
import logging

from launch_server.observability.figures import ReplicaFigures

FIGURES_NAMESPACE = "launch_figures"
PUBLISH_S = 2.0

FIGURES = ReplicaFigures()

logger = logging.getLogger("ray.serve")


def figures_key(app_name: str, replica_id: str) -> bytes:
    return f"{app_name}/{replica_id}".encode()


def publish(app_name: str, replica_id: str, figures: ReplicaFigures = FIGURES) -> None:
    """Writes the snapshot now (a blocking GCS call: run it off the event loop)."""
    from ray.experimental.internal_kv import _internal_kv_put

    value = json.dumps(figures.snapshot(), separators=(",", ":")).encode()
    _internal_kv_put(figures_key(app_name, replica_id), value, overwrite=True, namespace=FIGURES_NAMESPACE)


async def report_until_stopped(app_name: str, replica_id: str, stop: asyncio.Event) -> None:
    """Publishes every PUBLISH_S until `stop` is set, then once more. A failed write is only a
    late figure: the next one carries the same totals."""
    loop = asyncio.get_running_loop()
    while True:
        stopping = stop.is_set()
        try:
            await loop.run_in_executor(None, publish, app_name, replica_id)
        except Exception:  # noqa: BLE001 - see docstring
            logger.warning("Launch replica: writing its figures to the GCS failed", exc_info=True)
        if stopping:
            return
        try:
            await asyncio.wait_for(stop.wait(), PUBLISH_S)
        except TimeoutError:
            pass
