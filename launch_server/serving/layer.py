"""The serving layer's lifetime inside the server process: joins or starts Ray in the background
(the gRPC server answers bundle RPCs meanwhile), then runs the reconciler, the task dispatcher,
the watch hub, the callback sender and queue maintenance until the server stops, and shuts down
a Ray it started itself."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from launch_server.app import App
from launch_server.domain.batch_jobs import BatchJobService
from launch_server.domain.tasks import TaskService
from launch_server.store.batch_repository import SqlBatchJobRepository
from launch_server.store.secrets import shared_secret
from launch_server.store.task_repository import SqlTaskRepository
from launch_server.tasks.batches import BatchRunner
from launch_server.tasks.callbacks import CallbackSender
from launch_server.tasks.dispatcher import Dispatcher
from launch_server.tasks.watch import WatchHub

from . import cluster
from .reconciler import Reconciler
from .router import Router

log = logging.getLogger(__name__)


ROUTE_SECRET_NAME = "route"


class ServingLayer:
    def __init__(self, app: App) -> None:
        s = app.settings
        if not s.route_secret:
            # Signs route tokens (direct route); one per database, so every server accepts them.
            s.route_secret = shared_secret(app.engine, ROUTE_SECRET_NAME)
        self.app = app
        self.started_local = False
        self.reconciler = Reconciler(s, app.endpoint_repo, app.bundle_repo)
        self.router = Router(self.reconciler, app.endpoint_repo)
        self.task_repo = SqlTaskRepository(app.engine)
        self.tasks = TaskService(self.task_repo, app.endpoint_repo)
        self.hub = WatchHub(self.task_repo)
        self.dispatcher = Dispatcher(
            self.task_repo,
            self.reconciler,
            self.router,
            self.hub,
            lease_s=s.task_lease_s,
            max_attempts=s.task_max_attempts,
            group_max=s.task_group_max,
        )
        self.callbacks = CallbackSender(
            self.task_repo, max_attempts=s.callback_max_attempts, base_delay_s=s.callback_base_delay_s
        )
        self.batch_repo = SqlBatchJobRepository(app.engine)
        self.batch_jobs = BatchJobService(self.batch_repo, app.bundle_repo, app.endpoints, self.tasks)
        self.batches = BatchRunner(self.batch_repo, self.task_repo, app.endpoint_repo, self.reconciler, self.router)
        self.batch_jobs.on_change = self.batches.kick
        app.endpoints.on_change = self.reconciler.kick
        self.tasks.on_submit = self.dispatcher.kick
        if s.task_fast_path:
            self.tasks.admission = self.dispatcher
            self.tasks.hold_s = s.task_hold_ms / 1000
        self.tasks.cached_endpoint = self._cached_endpoint
        self.dispatcher.on_finished = self.callbacks.kick
        self.reconciler.on_removed = lambda endpoint_id: self.task_repo.fail_endpoint_tasks(
            endpoint_id, "cancelled: the endpoint was deleted"
        )

    def _cached_endpoint(self, owner: str, name: str):  # type: ignore[no-untyped-def]
        route = self.reconciler.routes.get((owner, name))
        return self.reconciler.endpoints_by_id.get(route[0]) if route else None

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.app.settings
        options = cluster.ClusterOptions(
            address=settings.ray_address,
            num_cpus=settings.ray_num_cpus,
            throughput_optimized=settings.throughput_optimized,
        )
        self.reconciler.error = "connecting to Ray"
        loops = [asyncio.create_task(self.hub.run(stop)), asyncio.create_task(self._maintain(stop))]
        for attempt in range(1, 4):
            try:
                self.started_local = await asyncio.to_thread(cluster.start, options)
                break
            except Exception as exc:  # noqa: BLE001 - the control plane keeps serving bundles
                # A busy machine can make a local Ray miss its start-up deadline: clean up, retry.
                self.reconciler.error = f"Ray failed to start (attempt {attempt} of 3): {exc}"
                log.exception("could not start or join Ray (attempt %d of 3)", attempt)
                await asyncio.to_thread(cluster.abandon_start, options)
        else:
            log.error("giving up on Ray; endpoints will not be served until the server restarts")
            await stop.wait()
            await asyncio.gather(*loops, return_exceptions=True)
            return
        loops += [
            asyncio.create_task(self.dispatcher.run(stop)),
            asyncio.create_task(self.callbacks.run(stop)),
            asyncio.create_task(self.batches.run(stop)),
        ]
        try:
            await self.reconciler.run(stop)
        finally:
            await asyncio.gather(*loops, return_exceptions=True)
            try:
                await asyncio.wait_for(cluster.stop_serve(self.started_local), timeout=60)
            except Exception:  # noqa: BLE001 - shutting down regardless
                log.exception("Serve shutdown failed")

    def shutdown(self) -> None:
        """Stops a Ray this server started; on the main thread, after the event loop ended."""
        cluster.stop_ray(self.started_local)

    async def _maintain(self, stop: asyncio.Event) -> None:
        """Leases of dead servers, expired tasks and old results; cheap, so every 2 s."""
        last_purge = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=2.0)
            except TimeoutError:
                pass
            try:
                if await asyncio.to_thread(self.task_repo.reclaim_expired_leases, self.dispatcher.max_attempts):
                    self.dispatcher.kick()
                await asyncio.to_thread(self.task_repo.expire_pending)
                if loop.time() - last_purge > 60:
                    last_purge = loop.time()
                    cutoff = datetime.now(UTC) - timedelta(seconds=self.app.settings.result_retention_s)
                    for url in await asyncio.to_thread(self.task_repo.purge_finished, cutoff):
                        if self.app.bundles.storage.contains(url):
                            await asyncio.to_thread(self.app.bundles.storage.delete, url)
            except Exception:  # noqa: BLE001
                log.exception("queue maintenance failed")
            try:  # its own try: a failed pass above must not let SQLite's write-ahead log grow
                await asyncio.to_thread(self.task_repo.checkpoint)
            except Exception:  # noqa: BLE001
                log.exception("database checkpoint failed")
