"""The serving layer's lifetime inside the server process: joins or starts Ray in the
background (the gRPC server answers bundle RPCs meanwhile), then runs the reconciler until the
server stops, and shuts down a Ray it started itself."""

from __future__ import annotations

import asyncio
import logging

from launch_server.app import App

from . import cluster
from .reconciler import Reconciler
from .router import Router

log = logging.getLogger(__name__)


class ServingLayer:
    def __init__(self, app: App) -> None:
        self.app = app
        self.reconciler = Reconciler(app.settings, app.endpoint_repo, app.bundle_repo)
        self.router = Router(self.reconciler, app.endpoint_repo)
        app.endpoints.on_change = self.reconciler.kick

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.app.settings
        options = cluster.ClusterOptions(
            address=settings.ray_address,
            num_cpus=settings.ray_num_cpus,
            throughput_optimized=settings.throughput_optimized,
        )
        self.reconciler.error = "connecting to Ray"
        try:
            started_local = await asyncio.to_thread(cluster.start, options)
        except Exception as exc:  # noqa: BLE001 - the control plane keeps serving bundles
            self.reconciler.error = f"Ray failed to start: {exc}"
            log.exception("could not start or join Ray; endpoints will not be served")
            await stop.wait()
            return
        try:
            await self.reconciler.run(stop)
        finally:
            await asyncio.to_thread(cluster.stop, started_local)
