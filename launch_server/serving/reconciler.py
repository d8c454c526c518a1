"""Converges Ray Serve to the database. The database says what should run (endpoints, their
bundles and settings, a generation per change); Ray Serve holds only running state. Each pass
deploys what is new or changed, deletes what was deleted, maps Serve's status onto Launch's status
strings (recording every transition and Serve message as an endpoint event), and refreshes the
live view (domain/live_endpoints.py) every reader of the serving state uses, so the request
paths never query the database.

Deploys never wait: `serve._run(..., _blocking=False)`, then later passes read serve.status().
All Ray calls are blocking, so a pass runs in a worker thread and RPCs are never blocked."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from launch_server.domain.endpoints import (
    Endpoint,
    EndpointRepository,
    EndpointStatus,
    EndpointType,
    is_batch_endpoint,
)
from launch_server.domain.live_endpoints import LiveRoute
from launch_server.domain.ownership import results_prefix
from launch_server.domain.serving_ports import BundleSource
from launch_server.replica import registry as replica_registry
from launch_server.replica.autoscaling import POLICY_IMPORT_PATH, drop_desired
from launch_server.replica.bundle_runtime import BundleDescriptor, RuntimeConfig
from launch_server.replica.listener import DirectConfig
from launch_server.serving import runtime_logs
from launch_server.serving.logs import pip_log_name
from launch_server.serving.placement import cluster_nodes, describe, missing_on_best_node, replica_demand
from launch_server.serving.ray_gate import RayUnavailable, gate
from launch_server.settings import Settings
from launch_server.wire.route_tokens import endpoint_key

log = logging.getLogger(__name__)
DEPLOYMENT_NAME = "replica"
# A pass's wait for Serve's status; the server waits a little longer than this for the pass under
# way before it disconnects from a lost cluster (layer.DRAIN_S).
STATUS_TIMEOUT_S = 10.0
CONVERGING_FOR_S = 30.0  # fast passes last this long after the last change seen
_CHANGING = (
    EndpointStatus.UPDATE_PENDING,
    EndpointStatus.UPDATE_IN_PROGRESS,
    EndpointStatus.DELETE_IN_PROGRESS,
)


@dataclass
class _Deployed:
    generation: int
    since: float
    ever_running: bool = False


class Reconciler:
    """Runs the passes and owns the live view they fill (LiveEndpoints): readers get immutable
    LiveRoute values and Endpoint rows, never the tables themselves, so a pass can replace any of
    them at any time."""

    def __init__(
        self,
        settings: Settings,
        endpoint_repo: EndpointRepository,
        bundle_repo: BundleSource,
        *,
        on_removed: Callable[[str], None] = lambda endpoint_id: None,
    ) -> None:
        self.settings = settings
        self._endpoints = endpoint_repo
        self._bundles = bundle_repo
        # Called with an endpoint id once its application is gone (the task queue cancels its tasks).
        self._on_removed = on_removed
        self._live: dict[str, LiveRoute] = {}  # endpoint_id -> what Serve says about it
        # (owner, name) -> endpoint_id, and endpoint_id -> row: the predict path's lookup tables.
        self._ids_by_name: dict[tuple[str, str], str] = {}
        self._by_id: dict[str, Endpoint] = {}
        self._deployed: dict[str, _Deployed] = {}
        self._wake = asyncio.Event()
        self._ready = False
        self.error = ""
        # Set while the Ray cluster is known to be gone (the reason says why): passes then make no
        # Ray call, and every endpoint is reported as not serving with this reason.
        self._ray_down = ""
        self.first_pass = asyncio.Event()
        self._last_change = time.monotonic()

    # ---- the live view (LiveEndpoints) ---------------------------------------------------------

    def endpoint_for(self, owner: str, name: str) -> Endpoint | None:
        endpoint_id = self._ids_by_name.get((owner, name))
        return self._by_id.get(endpoint_id) if endpoint_id is not None else None

    def endpoint(self, endpoint_id: str) -> Endpoint | None:
        return self._by_id.get(endpoint_id)

    def endpoints(self) -> list[Endpoint]:
        return list(self._by_id.values())

    def route(self, endpoint_id: str) -> LiveRoute | None:
        return self._live.get(endpoint_id)

    def capacity(self, endpoint_id: str) -> int:
        endpoint = self._by_id.get(endpoint_id)
        live = self._live.get(endpoint_id)
        if endpoint is None or live is None or not live.serving:
            return 0
        return max(1, endpoint.settings.per_worker * endpoint.settings.max_workers)

    def app_name(self, endpoint: Endpoint) -> str:
        return f"{self.settings.serve_app_prefix}-{endpoint.endpoint_id}"

    @property
    def ray_down(self) -> str:
        return self._ray_down

    @property
    def ready(self) -> bool:
        return self._ready

    async def wait_ready(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.first_pass.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # ---- the loop ------------------------------------------------------------------------------

    def wake(self) -> None:
        """Asks for a pass now (thread-safe enough: set() from the loop thread only)."""
        self._wake.set()

    def not_joined(self, reason: str) -> None:
        """Ray is not joined yet (or joining failed): what endpoints and requests are told."""
        self.error = reason

    def ray_lost(self, reason: str) -> None:
        """The cluster is gone: nothing is served (the dispatcher stops claiming) until ray_back."""
        self._ray_down = reason
        for endpoint_id, live in self._live.items():
            if live.status is not EndpointStatus.DELETE_IN_PROGRESS:
                self._live[endpoint_id] = dataclasses.replace(
                    live,
                    status=EndpointStatus.UPDATE_IN_PROGRESS,
                    reason=reason,
                    serving=False,
                    available_workers=0,
                    unavailable_workers=0,
                )
        self.wake()

    def ray_back(self) -> None:
        """A new cluster is up: the next passes redeploy every endpoint from the database."""
        self._deployed.clear()
        self._last_change = time.monotonic()
        self._ray_down = ""
        self.wake()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.report_outage if self._ray_down else self._gated_pass)
                self.error = ""
                self.first_pass.set()
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any one failure
                self.error = f"{type(exc).__name__}: {exc}"
                log.exception("reconcile pass failed")
            except (asyncio.CancelledError, SystemExit) as exc:
                task = asyncio.current_task()
                if isinstance(exc, asyncio.CancelledError) and (task is None or task.cancelling()):
                    raise  # this loop is being stopped
                # Raised by a Ray call in the pass's thread (its cluster went away).
                self.error = f"a Ray call of the reconcile pass was cut off: {exc!r}"
                log.warning(self.error)
            self._wake.clear()
            interval = self.settings.reconcile_interval_s
            if self.converging():
                interval = min(interval, self.settings.converging_interval_s)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            except TimeoutError:
                pass

    def converging(self) -> bool:
        """True while some endpoint is deploying, deleting or has workers starting: then passes
        run every converging_interval_s, so READY and new workers show up (and are routed to)
        within a fraction of a second instead of a whole reconcile interval."""
        if time.monotonic() - self._last_change > CONVERGING_FOR_S:
            return False  # stuck (say, waiting for a GPU): no point in polling Serve fast
        live = any(r.status in _CHANGING or r.unavailable_workers > 0 for r in self._live.values())
        return live or any(e.status in _CHANGING for e in self._by_id.values())

    # ---- one pass ------------------------------------------------------------------------------

    def report_outage(self) -> None:
        """A pass while Ray is gone: records the reason on every endpoint (an event once per
        change), with no Ray call; the router's view stays, so requests get the reason."""
        reason = self._ray_down
        for endpoint in self._endpoints.list_all():
            if endpoint.status is EndpointStatus.DELETE_IN_PROGRESS:
                continue
            self._endpoints.set_status(
                endpoint.endpoint_id, EndpointStatus.UPDATE_IN_PROGRESS, reason, endpoint.generation
            )
            self._live[endpoint.endpoint_id] = LiveRoute(
                self.app_name(endpoint), serving=False, status=EndpointStatus.UPDATE_IN_PROGRESS, reason=reason
            )

    def _gated_pass(self) -> None:
        """A pass through the Ray gate: while the cluster is lost or being joined it makes no
        Ray call (Serve would reconnect on its own, see ray_gate) and reports the outage."""
        try:
            with gate.held():
                self.reconcile_once()
        except RayUnavailable as exc:
            if self._ray_down:
                self.report_outage()
            else:
                log.warning("reconcile pass made no Ray call: %s", exc)

    def reconcile_once(self) -> None:
        from ray import serve

        from launch_server.serving.cluster import serve_status

        status = serve_status(STATUS_TIMEOUT_S)
        apps = status.applications
        endpoints = self._endpoints.list_all()
        known = set()
        for endpoint in endpoints:
            app = self.app_name(endpoint)
            known.add(app)
            try:
                self._converge(endpoint, app, apps)
            except Exception:  # noqa: BLE001 - one endpoint's failure must not stall the others
                log.exception("reconciling endpoint %s (%s) failed", endpoint.name, endpoint.endpoint_id)
        for app in apps:
            if app.startswith(f"{self.settings.serve_app_prefix}-") and app not in known:
                log.info("deleting orphaned Serve application %s", app)
                serve.delete(app, _blocking=False)
        serving = [e for e in endpoints if e.status is not EndpointStatus.DELETE_IN_PROGRESS]
        self._ids_by_name = {(e.owner, e.name): e.endpoint_id for e in serving}
        self._by_id = {e.endpoint_id: e for e in serving}
        live_ids = {e.endpoint_id for e in endpoints}
        for endpoint_id in list(self._live):
            if endpoint_id not in live_ids:
                self._live.pop(endpoint_id, None)
                self._deployed.pop(endpoint_id, None)
        self._ready = True

    def _converge(self, endpoint: Endpoint, app: str, apps: dict[str, Any]) -> None:
        if endpoint.status is EndpointStatus.DELETE_IN_PROGRESS:
            self._tear_down(endpoint, app, apps)
            return
        deployed = self._deployed.get(endpoint.endpoint_id)
        if deployed is None or deployed.generation != endpoint.generation or app not in apps:
            # After a server restart the application may still be running in Serve: redeploying the
            # same generation is then a no-op for Serve, and requests keep flowing meanwhile.
            still_running = app in apps and str(getattr(apps[app].status, "value", apps[app].status)) == "RUNNING"
            was_running = (deployed is not None and deployed.ever_running) or still_running
            self._deploy(endpoint, app, was_running=was_running)
            return
        self._observe(endpoint, app, apps[app], deployed)

    def _tear_down(self, endpoint: Endpoint, app: str, apps: dict[str, Any]) -> None:
        from ray import serve

        live = self._live.get(endpoint.endpoint_id)
        if live is not None:
            self._live[endpoint.endpoint_id] = dataclasses.replace(
                live, serving=False, status=EndpointStatus.DELETE_IN_PROGRESS
            )
        if app in apps:
            if str(apps[app].status) not in ("DELETING", "ApplicationStatus.DELETING"):
                serve.delete(app, _blocking=False)
            return
        self._on_removed(endpoint.endpoint_id)
        replica_registry.drop_application(app)  # entries of replicas that died without withdrawing
        drop_desired(app)
        runtime_logs.drop_application(app)
        self._endpoints.remove(endpoint.endpoint_id)
        self._live.pop(endpoint.endpoint_id, None)
        self._deployed.pop(endpoint.endpoint_id, None)
        log.info("endpoint %s (%s) deleted", endpoint.name, endpoint.endpoint_id)

    def actor_options(self, endpoint: Endpoint, requirements: tuple[str, ...]) -> dict[str, Any]:
        s = endpoint.settings
        options: dict[str, Any] = {"num_cpus": s.cpus, "memory": endpoint.memory_bytes}
        if s.gpus:
            options["num_gpus"] = s.gpus
            options["accelerator_type"] = endpoint.accelerator_type
        if requirements:
            # The pip output also goes to a log of this endpoint's own (serving/logs.py), so its
            # creation logs never show another endpoint's requirements.
            options["runtime_env"] = {
                "pip": {"packages": list(requirements), "pip_check": False},
                "config": {"log_files": [pip_log_name(self.app_name(endpoint))]},
            }
        return options

    def direct_config(self, endpoint: Endpoint, max_ongoing_requests: int) -> dict[str, Any] | None:
        """The replica's direct-route settings, or None when the route is off or the endpoint runs
        a batch job (its chunks go through Serve). Async endpoints listen too: the dispatcher sends
        single tasks there (task_queue/direct_calls.py), with tokens only the server mints for them."""
        cfg = self.settings
        if not cfg.direct_route or is_batch_endpoint(endpoint.name):
            return None
        key = endpoint_key(cfg.route_secret.encode(), endpoint.endpoint_id)
        return DirectConfig(
            endpoint_id=endpoint.endpoint_id,
            endpoint_name=endpoint.name,
            key_hex=key.hex(),
            host=cfg.direct_host,
            max_concurrent_rpcs=max_ongoing_requests,
            tls_cert_pem=cfg.replica_tls_cert_pem,
            tls_key_pem=cfg.replica_tls_key_pem,
            # The replica's port refuses the calls this type does not take, as the server does.
            endpoint_type=endpoint.settings.endpoint_type.value,
        ).to_dict()

    def _deploy(self, endpoint: Endpoint, app: str, was_running: bool) -> None:
        from ray import serve

        from launch_server.replica.deployment import LaunchReplica

        bundle = self._bundles.get_by_id(endpoint.bundle_id)
        if bundle is None:
            self._endpoints.set_status(
                endpoint.endpoint_id, EndpointStatus.UPDATE_FAILED, "its bundle no longer exists", endpoint.generation
            )
            return
        options = self.actor_options(endpoint, bundle.requirements)
        missing = missing_on_best_node(replica_demand(options), cluster_nodes(available=False))
        if missing is not None:
            reason = (
                f"no node in the cluster can fit one worker: missing {describe(missing)} "
                f"(each worker needs {describe(replica_demand(options))})"
            )
            self._endpoints.set_status(endpoint.endpoint_id, EndpointStatus.UPDATE_FAILED, reason, endpoint.generation)
            self._live[endpoint.endpoint_id] = LiveRoute(
                app, serving=False, status=EndpointStatus.UPDATE_FAILED, reason=reason
            )
            return
        s, cfg = endpoint.settings, self.settings
        config = RuntimeConfig(
            storage_url=cfg.storage_url,
            s3_endpoint_url=cfg.s3_endpoint_url,
            s3_region=cfg.s3_region,
            allow_local_file_urls=cfg.allow_local_file_urls,
            results_prefix=results_prefix(endpoint.owner),
            # Answers within the call keep no task row, so their stored results are swept.
            sync_results=s.endpoint_type is not EndpointType.ASYNC,
            # The endpoint's batch limits; None keeps the bundle's @launch.batched values.
            max_batch_size=s.max_batch_size,
            max_batch_wait_ms=s.max_batch_wait_ms,
            figures=cfg.metrics,
        )
        # Serve's per-replica limit, and the same limit on the replica's own (direct) port.
        max_ongoing = max(cfg.max_ongoing_requests, s.per_worker)
        deployment = serve.deployment(LaunchReplica, name=DEPLOYMENT_NAME).options(
            ray_actor_options=options,
            max_ongoing_requests=max_ongoing,
            autoscaling_config={
                "min_replicas": s.min_workers,
                "initial_replicas": s.min_workers,
                "max_replicas": s.max_workers,
                "target_ongoing_requests": s.per_worker,
                "metrics_interval_s": cfg.autoscale_metrics_interval_s,
                "look_back_period_s": cfg.autoscale_look_back_s,
                "upscale_delay_s": cfg.upscale_delay_s,
                "downscale_delay_s": cfg.downscale_delay_s,
                "downscale_to_zero_delay_s": cfg.downscale_to_zero_delay_s,
                "policy": {"policy_function": POLICY_IMPORT_PATH},
            },
            health_check_period_s=5,
            health_check_timeout_s=30,
            graceful_shutdown_timeout_s=10,  # > DRAIN_MAX_S: direct requests drain first
        )
        application = deployment.bind(
            BundleDescriptor.from_bundle(bundle).to_dict(),
            config.to_dict(),
            1,
            self.direct_config(endpoint, max_ongoing),
        )
        serve._run(application, name=app, route_prefix=None, _blocking=False)  # noqa: SLF001 - see module doc
        self._deployed[endpoint.endpoint_id] = _Deployed(endpoint.generation, time.monotonic(), was_running)
        self._last_change = time.monotonic()
        message = f"deploying generation {endpoint.generation} (bundle {bundle.name!r})"
        if bundle.requirements:
            message += f"; installing requirements {list(bundle.requirements)}"
        self._endpoints.set_status(
            endpoint.endpoint_id, EndpointStatus.UPDATE_IN_PROGRESS, message, endpoint.generation
        )
        self._live[endpoint.endpoint_id] = LiveRoute(
            app, serving=was_running, status=EndpointStatus.UPDATE_IN_PROGRESS, reason=message
        )

    def _observe(self, endpoint: Endpoint, app: str, overview: Any, deployed: _Deployed) -> None:
        app_status = str(getattr(overview.status, "value", overview.status))
        deployment = overview.deployments.get(DEPLOYMENT_NAME)
        replica_states = {
            str(getattr(k, "value", k)): v for k, v in (deployment.replica_states if deployment else {}).items()
        }
        available = replica_states.get("RUNNING", 0)
        unavailable = sum(v for k, v in replica_states.items() if k != "RUNNING")
        message = overview.message or (deployment.message if deployment else "") or ""
        if app_status == "RUNNING":
            deployed.ever_running = True
            status, reason, serving = EndpointStatus.READY, "", True
            if unavailable and available < endpoint.settings.min_workers:
                # A worker died or is being replaced: still READY (requests wait for it), but say so.
                reason = f"{unavailable} worker(s) starting or recovering, {available} running"
        elif app_status == "DEPLOY_FAILED":
            # The deployment's message carries the replica's own error (for example the bundle's
            # load error); the application's message only says that the deployment failed.
            detail = (deployment.message if deployment else "") or message or "deploy failed"
            status, reason, serving = EndpointStatus.UPDATE_FAILED, detail[-4000:], False
        elif app_status == "UNHEALTHY":
            status = EndpointStatus.READY if available else EndpointStatus.UPDATE_IN_PROGRESS
            reason = f"a worker failed and Serve is replacing it: {message}".strip()
            serving = available > 0
        elif app_status == "DELETING":
            status, reason, serving = EndpointStatus.DELETE_IN_PROGRESS, "", False
        else:  # NOT_STARTED, DEPLOYING
            status = EndpointStatus.UPDATE_IN_PROGRESS
            reason = message or f"deploying generation {endpoint.generation}"
            # A rollout of an endpoint that was serving keeps taking requests: while the old
            # replica stops and the new one starts, Serve's handle holds them (within their
            # deadlines), as it does at zero workers. Failing fast is for endpoints never up.
            serving = deployed.ever_running
            if available == 0 and time.monotonic() - deployed.since > 2:
                options = self.actor_options(endpoint, ())
                short = missing_on_best_node(replica_demand(options), cluster_nodes(available=True))
                if short is not None:
                    reason = f"waiting for resources: no node has {describe(short)} free now"
        self._endpoints.set_status(endpoint.endpoint_id, status, reason, endpoint.generation)
        live = LiveRoute(app, serving, status, reason, available, unavailable)
        if live != self._live.get(endpoint.endpoint_id):
            self._last_change = time.monotonic()
        self._live[endpoint.endpoint_id] = live
