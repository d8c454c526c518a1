"""The server's hold on its Ray cluster: joins or starts Ray in the background (the gRPC server
answers bundle RPCs meanwhile), watches it, and when it is lost reports every endpoint as not
serving, stops Ray calls at the gate, drops the dead connection within Ray's own reconnect limit
and joins again (a new local Ray, or the `--ray-address` cluster once it is back); the reconciler
then redeploys every endpoint from the database. On shutdown it ends a Ray it started itself."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from launch_server.serving import cluster, ray_gate
from launch_server.serving.reconciler import STATUS_TIMEOUT_S, Reconciler
from launch_server.serving.router import Router
from launch_server.settings import Settings

log = logging.getLogger(__name__)

# How long Ray calls under way may take to fail once the cluster is lost: short, because the
# disconnect that follows must end within the minute after which Ray ends a driver that cannot
# reach its GCS (gcs_rpc_server_reconnect_timeout_s).
DRAIN_S = STATUS_TIMEOUT_S + 2.0
DROP_S = 120.0  # how long disconnecting from a lost cluster may take

Loop = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


class RayLifecycle:
    def __init__(
        self,
        settings: Settings,
        reconciler: Reconciler,
        router: Router,
        abandon_calls: Callable[[], None],
        *,
        before_ray: list[Loop],
        with_ray: list[Loop],
    ) -> None:
        """`before_ray` loops run from the start (they need no cluster); `with_ray` loops start
        once Ray is joined; the reconciler's own loop runs until the server stops."""
        self._settings = settings
        self.reconciler = reconciler
        self.router = router
        self._abandon_calls = abandon_calls
        self._before_ray = before_ray
        self._with_ray = with_ray
        self.head: cluster.LocalHead | None = None  # the local Ray, when this server runs its own

    async def run(self, stop: asyncio.Event) -> None:
        settings = self._settings
        options = cluster.ClusterOptions(
            address=settings.ray_address,
            num_cpus=settings.ray_num_cpus,
            throughput_optimized=settings.throughput_optimized,
            start_timeout_s=settings.ray_start_timeout_s,
            log_dir=str(settings.data_dir),
        )
        self.reconciler.error = "connecting to Ray"
        ray_gate.gate.close(self.reconciler.error)  # nothing joins Ray on its own before connect
        loops = [asyncio.create_task(loop(stop)) for loop in self._before_ray]
        if not await self._join_ray(options, stop):
            log.error("giving up on Ray; endpoints will not be served until the server restarts")
            await stop.wait()
            await asyncio.gather(*loops, return_exceptions=True)
            return
        loops += [asyncio.create_task(loop(stop)) for loop in self._with_ray]
        loops.append(asyncio.create_task(self._supervise(options, stop)))
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
            self._abandon_calls()
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
