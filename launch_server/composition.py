"""The one place that builds Launch. Settings become a database engine, object storage and
repositories; those become the domain services; with the serving layer on, the reconciler,
router, task queue, batch runner and Ray lifecycle; and last the gRPC servicers. Every
collaborator is passed to a constructor, so reading this file top to bottom shows who talks to
whom, and nothing is assigned onto a service after it is built."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from launch_server.api.batch_jobs import BatchJobServicer
from launch_server.api.bundles import ModelBundleServicer
from launch_server.api.endpoints import ModelEndpointServicer
from launch_server.api.inference import InferenceServicer
from launch_server.api.server import Servicers
from launch_server.api.tasks import TaskServicer
from launch_server.domain.batch_jobs import BatchJobService
from launch_server.domain.bundles import BundleService
from launch_server.domain.endpoints import EndpointService
from launch_server.domain.keys import ApiKeyService
from launch_server.domain.ports import ObjectStorage
from launch_server.domain.tasks import TaskService
from launch_server.observability.exposition import EndpointCollector, EndpointSource, ServerMetrics
from launch_server.serving.cluster import ClusterOptions
from launch_server.serving.endpoint_stats import EndpointStatsReader
from launch_server.serving.layer import OutageResponse, ServingLayer
from launch_server.serving.ray_lifecycle import RayLifecycle
from launch_server.serving.reconciler import Reconciler
from launch_server.serving.replica_figures import ReplicaFiguresReader
from launch_server.serving.revocations import RevocationPublisher
from launch_server.serving.router import Router
from launch_server.serving.runtime_logs import RuntimeLogs
from launch_server.settings import Settings
from launch_server.storage import open_storage
from launch_server.storage.sweeper import StorageSweeper, SweepPolicy
from launch_server.store.batch_repository import SqlBatchJobRepository
from launch_server.store.db import DbTimeouts, make_engine, upgrade
from launch_server.store.endpoint_repository import SqlEndpointRepository
from launch_server.store.repositories import SqlApiKeyRepository, SqlBundleRepository
from launch_server.store.secrets import shared_secret
from launch_server.store.task_repository import SqlTaskRepository
from launch_server.task_queue.admission import AdmittingWriter
from launch_server.task_queue.batch_runner import BatchRunner
from launch_server.task_queue.callbacks import CallbackSender
from launch_server.task_queue.dispatcher import Dispatcher
from launch_server.task_queue.maintenance import QueueMaintenance
from launch_server.task_queue.queue_figures import QueueFigures
from launch_server.task_queue.watch import WatchHub
from launch_server.wire.replica_tls import ReplicaTls, make_replica_tls

ROUTE_SECRET_NAME = "route"
REPLICA_TLS_NAME = "replica-tls"


@dataclass(frozen=True)
class ControlPlane:
    """What every command needs: the database, storage, keys and bundles (no Ray)."""

    settings: Settings
    engine: Engine
    storage: ObjectStorage
    keys: ApiKeyService
    bundles: BundleService
    bundle_repo: SqlBundleRepository
    endpoint_repo: SqlEndpointRepository

    def close(self) -> None:
        self.engine.dispose()


@dataclass(frozen=True)
class Launch:
    """A whole server: its control plane, the serving layer when on, and the servicers."""

    control: ControlPlane
    servicers: Servicers
    serving: ServingLayer | None
    task_repo: SqlTaskRepository | None
    metrics: ServerMetrics

    def close(self) -> None:
        if self.task_repo is not None:
            self.task_repo.close()
        self.control.close()


def build_control_plane(settings: Settings, migrate: bool = True) -> ControlPlane:
    settings = settings.resolved()
    if migrate:
        upgrade(settings.database_url)
    engine = make_engine(
        settings.database_url,
        DbTimeouts(settings.db_connect_timeout_s, settings.db_statement_timeout_s, settings.db_pool_timeout_s),
    )
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url, settings.s3_region)
    bundle_repo = SqlBundleRepository(engine)
    return ControlPlane(
        settings=settings,
        engine=engine,
        storage=storage,
        keys=ApiKeyService(
            SqlApiKeyRepository(engine),
            cache_seconds=settings.auth_cache_seconds,
            unknown_key_cache_s=settings.auth_unknown_key_cache_s,
        ),
        bundles=BundleService(
            bundle_repo,
            storage,
            max_upload_bytes=settings.max_upload_bytes,
            readable_prefixes=settings.readable_prefixes,
        ),
        bundle_repo=bundle_repo,
        endpoint_repo=SqlEndpointRepository(engine),
    )


def build_launch(settings: Settings) -> Launch:
    control = build_control_plane(settings)
    metrics = ServerMetrics()
    if not control.settings.serving:
        return Launch(
            control, _control_plane_servicers(control, metrics), serving=None, task_repo=None, metrics=metrics
        )
    return _with_serving_layer(control, metrics)


def _count_uploads(metrics: ServerMetrics) -> Callable[[str, int], None]:
    counter = metrics.upload_bytes
    return lambda owner, size: counter.labels(owner).inc(size)


def _control_plane_servicers(control: ControlPlane, metrics: ServerMetrics) -> Servicers:
    """Without a serving layer, requests are still decoded and checked (bad input names its
    field), then answer that this server does not serve them."""
    return Servicers(
        bundles=ModelBundleServicer(control.bundles, _count_uploads(metrics)),
        endpoints=ModelEndpointServicer(EndpointService(control.endpoint_repo, control.bundle_repo), None, None),
        inference=InferenceServicer(None),
        tasks=TaskServicer(None, None, control.storage),
        batch_jobs=BatchJobServicer(None, control.bundles),
    )


def _with_serving_layer(control: ControlPlane, metrics: ServerMetrics) -> Launch:
    settings = _with_shared_secrets(control.settings, control.engine)
    engine = control.engine
    task_repo = SqlTaskRepository(engine)
    batch_repo = SqlBatchJobRepository(engine)

    reconciler = Reconciler(
        settings,
        control.endpoint_repo,
        control.bundle_repo,
        on_removed=lambda endpoint_id: task_repo.fail_endpoint_tasks(
            endpoint_id, "cancelled: the endpoint was deleted"
        ),
    )
    endpoints = EndpointService(control.endpoint_repo, control.bundle_repo, on_change=reconciler.wake)
    router = Router(settings, reconciler, control.endpoint_repo)

    watch_hub = WatchHub(task_repo)
    callbacks = CallbackSender.from_settings(task_repo, settings)
    dispatcher = Dispatcher(
        task_repo,
        reconciler,
        router,
        watch_hub,
        on_finished=callbacks.wake,
        lease_s=settings.task_lease_s,
        max_attempts=settings.task_max_attempts,
        group_max=settings.task_group_max,
    )
    fast_path = settings.task_fast_path
    writer = AdmittingWriter(
        task_repo,
        dispatcher.wake,
        dispatcher if fast_path else None,
        settings.task_hold_ms / 1000 if fast_path else 0.0,
    )
    tasks = TaskService(task_repo, control.endpoint_repo, reconciler, writer, dispatcher.cancel)

    batch_runner = BatchRunner(
        batch_repo, task_repo, control.endpoint_repo, reconciler, router, wake_reconciler=reconciler.wake
    )
    batch_jobs = BatchJobService(batch_repo, control.bundle_repo, endpoints, tasks, on_change=batch_runner.wake)

    maintenance = QueueMaintenance(
        task_repo,
        control.storage,
        StorageSweeper(control.storage, SweepPolicy.from_settings(settings)),
        wake_dispatcher=dispatcher.wake,
        max_attempts=settings.task_max_attempts,
        result_retention_s=settings.result_retention_s,
        sweep_interval_s=settings.storage_sweep_interval_s,
    )
    outage = OutageResponse(reconciler, dispatcher, router)
    figures = ReplicaFiguresReader(
        settings.serve_app_prefix, served_apps=lambda: {reconciler.app_name(e) for e in reconciler.endpoints()}
    )
    queue_figures = QueueFigures(task_repo, reconciler)
    runtime_logs = RuntimeLogs(settings.serve_app_prefix, max_followers=settings.log_followers_max)
    metrics.registry.register(
        EndpointCollector(EndpointSource(reconciler, figures.by_app, figures.desired_workers, queue_figures))
    )
    serving = ServingLayer(
        reconciler=reconciler,
        router=router,
        dispatcher=dispatcher,
        watch_hub=watch_hub,
        callbacks=callbacks,
        # Revoked keys' route tokens stop at the replicas, not only when they expire.
        revocations=RevocationPublisher(
            control.keys,
            settings.serve_app_prefix,
            settings.route_token_ttl_s + settings.auth_cache_seconds,
            settings.revoked_keys_poll_s,
        ),
        batch_runner=batch_runner,
        maintenance=maintenance,
        ray=RayLifecycle(_cluster_options(settings), outage),
        outage=outage,
        figures=figures,
        queue_figures=queue_figures,
        runtime_logs=runtime_logs,
    )
    servicers = Servicers(
        bundles=ModelBundleServicer(control.bundles, _count_uploads(metrics)),
        endpoints=ModelEndpointServicer(
            endpoints,
            reconciler,
            router,
            runtime_logs,
            EndpointStatsReader(reconciler, figures, queue_figures) if settings.metrics else None,
        ),
        inference=InferenceServicer(router),
        tasks=TaskServicer(tasks, watch_hub, control.storage),
        batch_jobs=BatchJobServicer(batch_jobs, control.bundles),
    )
    return Launch(dataclasses.replace(control, settings=settings), servicers, serving, task_repo, metrics)


def _with_shared_secrets(settings: Settings, engine: Engine) -> Settings:
    """Fills what every server sharing the database must agree on, made once and kept there:
    the secret that signs route tokens (the direct route) and, with replica TLS on, the
    authority and certificate replicas serve with."""
    route_secret = settings.route_secret or shared_secret(engine, ROUTE_SECRET_NAME)
    settings = dataclasses.replace(settings, route_secret=route_secret)
    if settings.replica_tls and not settings.replica_tls_ca_pem:
        tls = ReplicaTls.from_json(shared_secret(engine, REPLICA_TLS_NAME, lambda: make_replica_tls().to_json()))
        settings = dataclasses.replace(
            settings, replica_tls_ca_pem=tls.ca_pem, replica_tls_cert_pem=tls.cert_pem, replica_tls_key_pem=tls.key_pem
        )
    return settings


def _cluster_options(settings: Settings) -> ClusterOptions:
    return ClusterOptions(
        address=settings.ray_address,
        num_cpus=settings.ray_num_cpus,
        throughput_optimized=settings.throughput_optimized,
        start_timeout_s=settings.ray_start_timeout_s,
        log_dir=str(settings.data_dir),
    )


def ensure_dev_key(control: ControlPlane) -> str | None:
    """On a fresh database, creates a key for owner 'dev', writes it to the data directory with
    owner-only permissions and returns it, so the embedded-defaults quick start needs no setup."""
    if control.keys.list():
        return None
    _, key = control.keys.create("dev", description="development key created on first start")
    path = control.settings.dev_key_file
    assert path is not None
    # Created owner-only in one step (never readable in between, whatever the umask); a file
    # left from an earlier database holds a key that no longer exists, so it is replaced.
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key
