"""The serving layer's running parts inside the server process, and their order in time: the
watch hub and queue maintenance run from the start (the gRPC server answers bundle RPCs
meanwhile); once Ray is joined, the dispatcher, callbacks, revocations, batch runner and the
cluster's supervision run beside the reconciler until the server stops. Every part is built by
`launch_server.composition` and handed in; this module only runs them."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from launch_server.serving import ray_gate
from launch_server.serving.ray_lifecycle import RayLifecycle
from launch_server.serving.reconciler import Reconciler
from launch_server.serving.replica_figures import ReplicaFiguresReader
from launch_server.serving.revocations import RevocationPublisher
from launch_server.serving.router import Router
from launch_server.serving.runtime_logs import RuntimeLogs
from launch_server.task_queue.batch_runner import BatchRunner
from launch_server.task_queue.callbacks import CallbackSender
from launch_server.task_queue.dispatcher import Dispatcher
from launch_server.task_queue.maintenance import QueueMaintenance
from launch_server.task_queue.queue_figures import QueueFigures
from launch_server.task_queue.watch import WatchHub

log = logging.getLogger(__name__)

CONNECTING = "connecting to Ray"


class OutageResponse:
    """What a lost Ray cluster means for the rest of the server (RayEvents): every endpoint is
    reported as not serving, calls in flight are abandoned to the queue's retries, routes are
    forgotten, and a cluster that is back is redeployed from the database."""

    def __init__(self, reconciler: Reconciler, dispatcher: Dispatcher, router: Router) -> None:
        self._reconciler = reconciler
        self._dispatcher = dispatcher
        self._router = router

    def not_joined(self, reason: str) -> None:
        self._reconciler.not_joined(reason)

    async def lost(self, reason: str) -> None:
        self._reconciler.ray_lost(reason)
        self._dispatcher.abandon_calls()
        await self._router.forget_all()
        try:  # now, not when the reconciler's pass under way (stuck on the dead cluster) ends
            await asyncio.to_thread(self._reconciler.report_outage)
        except Exception:  # noqa: BLE001 - its next pass reports it again
            log.exception("recording the outage on the endpoints failed")

    def still_lost(self, reason: str) -> None:
        self._reconciler.ray_lost(reason)

    def back(self) -> None:
        self._reconciler.ray_back()


@dataclass(frozen=True)
class ServingLayer:
    reconciler: Reconciler
    router: Router
    dispatcher: Dispatcher
    watch_hub: WatchHub
    callbacks: CallbackSender
    revocations: RevocationPublisher
    batch_runner: BatchRunner
    maintenance: QueueMaintenance
    ray: RayLifecycle
    outage: OutageResponse
    figures: ReplicaFiguresReader
    queue_figures: QueueFigures
    runtime_logs: RuntimeLogs

    async def run(self, stop: asyncio.Event) -> None:
        self.outage.not_joined(CONNECTING)
        ray_gate.gate.close(CONNECTING)  # nothing joins Ray on its own before the lifecycle does
        loops = [asyncio.create_task(self.watch_hub.run(stop)), asyncio.create_task(self.maintenance.run(stop))]
        if not await self.ray.join(stop):
            log.error("giving up on Ray; endpoints will not be served until the server restarts")
            await stop.wait()
            await asyncio.gather(*loops, return_exceptions=True)
            return
        loops += [
            asyncio.create_task(self.dispatcher.run(stop)),
            asyncio.create_task(self.callbacks.run(stop)),
            asyncio.create_task(self.revocations.run(stop)),
            asyncio.create_task(self.batch_runner.run(stop)),
            asyncio.create_task(self.ray.supervise(stop)),
            asyncio.create_task(self.figures.run(stop)),
            asyncio.create_task(self.queue_figures.run(stop)),
            asyncio.create_task(self.runtime_logs.run(stop)),
        ]
        try:
            await self.reconciler.run(stop)
        finally:
            await asyncio.gather(*loops, return_exceptions=True)
            await self.router.close()
            await self.ray.stop_serve()

    def shutdown(self) -> None:
        """Stops a Ray this server started; on the main thread, after the event loop ended."""
        self.ray.shutdown()
