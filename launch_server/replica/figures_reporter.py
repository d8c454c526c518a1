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

from launch_server.observability.figures import ReplicaFigures
from launch_server.replica.publishing import publish_until_stopped

FIGURES_NAMESPACE = "launch_figures"
PUBLISH_S = 2.0

FIGURES = ReplicaFigures()


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
    await publish_until_stopped(lambda: publish(app_name, replica_id), PUBLISH_S, stop, "figures")
