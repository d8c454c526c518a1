"""The serving layer's lifetime inside the server process: joins or starts Ray in the background
(the gRPC server answers bundle RPCs meanwhile), then runs the reconciler, the task dispatcher,
the watch hub, the callback sender and queue maintenance until the server stops, and shuts down
a Ray it started itself. A local Ray that dies is replaced by a new one (see _supervise)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from launch_server.app import App
from launch_server.domain.batch_jobs import BatchJobService
from launch_server.domain.endpoints import EndpointService
from launch_server.domain.tasks import TaskService
from launch_server.serving import cluster, ray_gate
from launch_server.serving.reconciler import STATUS_TIMEOUT_S, Reconciler
from launch_server.serving.revocations import RevocationPublisher
from launch_server.serving.router import Router
from launch_server.storage.sweeper import StorageSweeper, SweepPolicy
from launch_server.store.batch_repository import SqlBatchJobRepository
from launch_server.store.secrets import shared_secret
from launch_server.store.task_repository import SqlTaskRepository
from launch_server.task_queue.admission import AdmittingWriter
from launch_server.task_queue.batch_runner import BatchRunner
from launch_server.task_queue.callbacks import CallbackSender
from launch_server.task_queue.dispatcher import Dispatcher
from launch_server.task_queue.watch import WatchHub
from launch_server.wire.replica_tls import ReplicaTls, make_replica_tls

log = logging.getLogger(__name__)


ROUTE_SECRET_NAME = "route"
REPLICA_TLS_NAME = "replica-tls"
# How long Ray calls under way may take to fail once the cluster is lost: short, because the
# disconnect that follows must end within the minute after which Ray ends a driver that cannot
# reach its GCS (gcs_rpc_server_reconnect_timeout_s).
DRAIN_S = STATUS_TIMEOUT_S + 2.0
DROP_S = 120.0  # how long disconnecting from a lost cluster may take


class ServingLayer:
    def __init__(self, app: App) -> None:
        s = app.settings
        if not s.route_secret:
            # Signs route tokens (direct route); one per database, so every server accepts them.
            s.route_secret = shared_secret(app.engine, ROUTE_SECRET_NAME)
        if s.replica_tls and not s.replica_tls_ca_pem:
            tls = ReplicaTls.from_json(
                shared_secret(app.engine, REPLICA_TLS_NAME, lambda: make_replica_tls().to_json())
            )
            s.replica_tls_ca_pem, s.replica_tls_cert_pem, s.replica_tls_key_pem = tls.ca_pem, tls.cert_pem, tls.key_pem
        self.app = app
        self.head: cluster.LocalHead | None = None  # the local Ray, when this server runs its own
        self.reconciler = Reconciler(
            s,
            app.endpoint_repo,
            app.bundle_repo,
            on_removed=lambda endpoint_id: self.task_repo.fail_endpoint_tasks(
                endpoint_id, "cancelled: the endpoint was deleted"
            ),
        )
        app.endpoints = EndpointService(app.endpoint_repo, app.bundle_repo, on_change=self.reconciler.wake)
        self.router = Router(s, self.reconciler, app.endpoint_repo)
        self.task_repo = SqlTaskRepository(app.engine)
        self.hub = WatchHub(self.task_repo)
        self.callbacks = CallbackSender.from_settings(self.task_repo, s)
        self.dispatcher = Dispatcher(
            self.task_repo,
            self.reconciler,
            self.router,
            self.hub,
            on_finished=self.callbacks.wake,
            lease_s=s.task_lease_s,
            max_attempts=s.task_max_attempts,
            group_max=s.task_group_max,
        )
        writer = AdmittingWriter(
            self.task_repo,
            self.dispatcher.wake,
            self.dispatcher if s.task_fast_path else None,
            s.task_hold_ms / 1000 if s.task_fast_path else 0.0,
        )
        self.tasks = TaskService(self.task_repo, app.endpoint_repo, self.reconciler, writer, self.dispatcher.cancel)
        # Revoked keys' route tokens stop at the replicas, not only when they expire.
        self.revocations = RevocationPublisher(
            app.keys, s.serve_app_prefix, s.route_token_ttl_s + s.auth_cache_seconds, s.revoked_keys_poll_s
        )
        self.sweeper = StorageSweeper(app.bundles.storage, SweepPolicy.from_settings(s))
        self.batch_repo = SqlBatchJobRepository(app.engine)
        self.batches = BatchRunner(
            self.batch_repo,
            self.task_repo,
            app.endpoint_repo,
            self.reconciler,
            self.router,
            wake_reconciler=self.reconciler.wake,
        )
        self.batch_jobs = BatchJobService(
            self.batch_repo, app.bundle_repo, app.endpoints, self.tasks, on_change=self.batches.wake
        )

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.app.settings
        options = cluster.ClusterOptions(
            address=settings.ray_address,
            num_cpus=settings.ray_num_cpus,
            throughput_optimized=settings.throughput_optimized,
            start_timeout_s=settings.ray_start_timeout_s,
            log_dir=str(settings.data_dir),
        )
        self.reconciler.error = "connecting to Ray"
        ray_gate.gate.close(self.reconciler.error)  # nothing joins Ray on its own before connect
        loops = [asyncio.create_task(self.hub.run(stop)), asyncio.create_task(self._maintain(stop))]
        if not await self._join_ray(options, stop):
            log.error("giving up on Ray; endpoints will not be served until the server restarts")
            await stop.wait()
            await asyncio.gather(*loops, return_exceptions=True)
            return
        loops += [
            asyncio.create_task(self.dispatcher.run(stop)),
            asyncio.create_task(self.callbacks.run(stop)),
            asyncio.create_task(self.revocations.run(stop)),
            asyncio.create_task(self.batches.run(stop)),
            asyncio.create_task(self._supervise(options, stop)),
        ]
        try:
            await self.reconciler.run(stop)
        finally:
            await asyncio.gather(*loops, return_exceptions=True)
            if self.head is not None and self.head.alive():
                try:
                    await asyncio.wait_for(cluster.stop_serve(), timeout=60)
                except Exception:  # noqa: BLE001 - shutting down regardless
                    log.exception("Serve shutdown failed")

    async def _join_ray(self, options: cluster.ClusterOptions, stop: asyncio.Event) -> bool:
        """Starts the local Ray head (or takes the given address) and connects, up to 3 tries;
        the gate opens once Serve runs there."""
        for attempt in range(1, 4):
            if stop.is_set():
                return False
            try:
                address = options.address
                if not address:
                    self.head = cluster.LocalHead.launch(options)  # on this (main) thread: see launch
                    await asyncio.to_thread(self.head.wait_ready, options.start_timeout_s)
                    address = self.head.address
                await asyncio.to_thread(cluster.connect, options, address)
                ray_gate.gate.open()
                return True
            except Exception as exc:  # noqa: BLE001 - the control plane keeps serving bundles
                self.reconciler.error = f"Ray failed to start (attempt {attempt} of 3): {exc}"
                ray_gate.gate.close(self.reconciler.error)
                log.exception("could not start or join Ray (attempt %d of 3)", attempt)
                await self._drop_ray_bounded()
        return False

    async def _supervise(self, options: cluster.ClusterOptions, stop: asyncio.Event) -> None:
        """Watches the cluster: the local head's process, or the joined cluster's GCS. When it is
        gone, every endpoint is reported as not serving, queued tasks wait, Ray calls stop at the
        gate, and the server joins again (a new local Ray, or the `--ray-address` cluster once it
        is back); the reconciler then redeploys every endpoint from the database."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.5)
            except TimeoutError:
                pass
            if stop.is_set():
                continue
            reason = await self._lost_reason(options)
            if reason is None:
                continue
            log.error("%s; joining Ray again", reason)
            ray_gate.gate.close(reason)  # before anything else: no Ray call may reconnect on its own
            self.reconciler.ray_lost(reason)
            self.dispatcher.abandon_calls()
            await self.router.forget_all()
            try:  # now, not when the reconciler's pass under way (stuck on the dead cluster) ends
                await asyncio.to_thread(self.reconciler.report_outage)
            except Exception:  # noqa: BLE001 - its next pass reports it again
                log.exception("recording the outage on the endpoints failed")
            # Calls already inside the gate fail against the dead cluster; only then disconnect.
            # Promptly: a driver whose cluster stays unreachable for a minute is ended by Ray.
            if not await asyncio.to_thread(ray_gate.gate.wait_idle, DRAIN_S):
                log.warning("Ray calls still running %.0f s after the cluster was lost; disconnecting anyway", DRAIN_S)
            await self._drop_ray_bounded()
            while not stop.is_set():
                if options.address and not await asyncio.to_thread(cluster.gcs_reachable, options.address):
                    await asyncio.sleep(1.0)  # the given cluster is not back yet
                    continue
                if await self._join_ray(options, stop):
                    self.reconciler.ray_back()
                    log.info("Ray is back; redeploying every endpoint from the database")
                    break
                self.reconciler.ray_lost(f"{reason}; joining again failed: {self.reconciler.error}")
                try:
                    await asyncio.wait_for(stop.wait(), timeout=10)
                except TimeoutError:
                    pass

    async def _lost_reason(self, options: cluster.ClusterOptions) -> str | None:
        """Why the cluster is gone, or None while it is there."""
        if self.head is not None:
            if self.head.alive():
                return None
            return f"Ray cluster unreachable: the local Ray head exited with {self.head.proc.returncode}"
        if not options.address:
            return None
        if await asyncio.to_thread(cluster.gcs_reachable, options.address):
            return None
        return f"Ray cluster unreachable: no answer from its GCS at {options.address}"

    async def _drop_ray_bounded(self) -> None:
        """_drop_ray in a worker thread. ray.shutdown() against a dead GCS takes a while; the
        next join waits for it (a join while it runs has the shutdown tear down the new
        connection), up to DROP_S, then goes on."""
        drop = asyncio.ensure_future(asyncio.to_thread(self._drop_ray))
        done, _ = await asyncio.wait({drop}, timeout=DROP_S)
        if not done:
            log.error("disconnecting from the lost Ray cluster took over %.0f s; joining anyway", DROP_S)
        elif drop.exception() is not None:
            log.error("disconnecting from Ray failed", exc_info=drop.exception())

    def _drop_ray(self) -> None:
        """Disconnects, and ends the local head with every Ray process it started (blocking)."""
        head, self.head = self.head, None
        if head is not None and not head.alive():
            # The head is gone: its leftovers are ended first, so the driver's disconnect
            # finds nothing that half-answers.
            ended = head.stop()
            log.info("local Ray head stopped; ended %d leftover process(es) by pid", ended)
            head = None
        try:
            cluster.disconnect()
        except Exception:  # noqa: BLE001 - the head is ended regardless
            log.exception("disconnecting from Ray failed")
        if head is not None:
            ended = head.stop()
            log.info("local Ray head stopped; ended %d leftover process(es) by pid", ended)

    def shutdown(self) -> None:
        """Stops a Ray this server started; on the main thread, after the event loop ended."""
        ray_gate.gate.close("the server is stopping")
        self._drop_ray()

    async def _maintain(self, stop: asyncio.Event) -> None:
        """Leases of dead servers, expired tasks and old results; cheap, so every 2 s."""
        last_purge = last_sweep = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=2.0)
            except TimeoutError:
                pass
            try:
                if await asyncio.to_thread(self.task_repo.reclaim_expired_leases, self.dispatcher.max_attempts):
                    self.dispatcher.wake()
                await asyncio.to_thread(self.task_repo.expire_pending)
                if loop.time() - last_purge > 60:
                    last_purge = loop.time()
                    cutoff = datetime.now(UTC) - timedelta(seconds=self.app.settings.result_retention_s)
                    for url in await asyncio.to_thread(self.task_repo.purge_finished, cutoff):
                        if self.app.bundles.storage.contains(url):
                            await asyncio.to_thread(self.app.bundles.storage.delete, url)
            except Exception:  # noqa: BLE001
                log.exception("queue maintenance failed")
            try:  # storage no row owns (storage/sweeper.py): bounded passes, each in its own try
                if loop.time() - last_sweep > self.app.settings.storage_sweep_interval_s:
                    last_sweep = loop.time()
                    await asyncio.to_thread(self.sweeper.sweep, datetime.now(UTC))
            except Exception:  # noqa: BLE001
                log.exception("storage sweep failed")
            try:  # its own try: a failed pass above must not let SQLite's write-ahead log grow
                await asyncio.to_thread(self.task_repo.checkpoint)
            except Exception:  # noqa: BLE001
                log.exception("database checkpoint failed")
