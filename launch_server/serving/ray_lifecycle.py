"""The server's hold on its Ray cluster: joins it (starting a local head when no address is
given), watches it, and when it is lost lets the rest of the server know, disconnects within
bounds and joins again. What losing the cluster means for endpoints, calls and routes is the
business of the `RayEvents` the lifecycle reports to."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from launch_server.serving import cluster, ray_gate
from launch_server.serving.reconciler import STATUS_TIMEOUT_S

log = logging.getLogger(__name__)

JOIN_ATTEMPTS = 3
# How long Ray calls under way may take to fail once the cluster is lost: short, because the
# disconnect that follows must end within the minute after which Ray ends a driver that cannot
# reach its GCS (gcs_rpc_server_reconnect_timeout_s).
DRAIN_S = STATUS_TIMEOUT_S + 2.0
DROP_S = 120.0  # how long disconnecting from a lost cluster may take
WATCH_S = 0.5  # how often the cluster is checked
REJOIN_WAIT_S = 10.0  # between failed rejoins


class RayEvents(Protocol):
    """What the rest of the server does as the cluster comes and goes."""

    def not_joined(self, reason: str) -> None:
        """Ray is not (yet) joined, for this reason: endpoints report it."""

    async def lost(self, reason: str) -> None:
        """The cluster is gone: stop serving from it, before the lifecycle disconnects."""

    def still_lost(self, reason: str) -> None:
        """A rejoin failed; the cluster is still gone."""

    def back(self) -> None:
        """A cluster is joined again: redeploy from the database."""


class RayLifecycle:
    """Joins, watches and rejoins one Ray cluster; every Ray call elsewhere passes `ray_gate`,
    which this class opens once Serve runs and closes the moment the cluster is lost."""

    def __init__(self, options: cluster.ClusterOptions, events: RayEvents) -> None:
        self._options = options
        self._events = events
        self._head: cluster.LocalHead | None = None  # the local Ray, when this server runs its own
        self._last_error = ""

    @property
    def runs_local_head(self) -> bool:
        return self._head is not None and self._head.alive()

    async def join(self, stop: asyncio.Event) -> bool:
        """Starts the local Ray head (or takes the given address) and connects, up to
        JOIN_ATTEMPTS tries; the gate opens once Serve runs there."""
        for attempt in range(1, JOIN_ATTEMPTS + 1):
            if stop.is_set():
                return False
            try:
                address = self._options.address
                if not address:
                    self._head = cluster.LocalHead.launch(self._options)  # on this (main) thread: see launch
                    await asyncio.to_thread(self._head.wait_ready, self._options.start_timeout_s)
                    address = self._head.address
                await asyncio.to_thread(cluster.connect, self._options, address)
                ray_gate.gate.open()
                return True
            except Exception as exc:  # noqa: BLE001 - the control plane keeps serving bundles
                self._last_error = f"Ray failed to start (attempt {attempt} of {JOIN_ATTEMPTS}): {exc}"
                self._events.not_joined(self._last_error)
                ray_gate.gate.close(self._last_error)
                log.exception("could not start or join Ray (attempt %d of %d)", attempt, JOIN_ATTEMPTS)
                await self._drop_bounded()
        return False

    async def supervise(self, stop: asyncio.Event) -> None:
        """Watches the cluster: the local head's process, or the joined cluster's GCS. When it is
        gone, Ray calls stop at the gate, the events hear of it, and the server joins again (a
        new local Ray, or the given cluster once it is back)."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=WATCH_S)
            except TimeoutError:
                pass
            if stop.is_set():
                continue
            reason = await self._lost_reason()
            if reason is None:
                continue
            log.error("%s; joining Ray again", reason)
            ray_gate.gate.close(reason)  # before anything else: no Ray call may reconnect on its own
            await self._events.lost(reason)
            # Calls already inside the gate fail against the dead cluster; only then disconnect.
            # Promptly: a driver whose cluster stays unreachable for a minute is ended by Ray.
            if not await asyncio.to_thread(ray_gate.gate.wait_idle, DRAIN_S):
                log.warning("Ray calls still running %.0f s after the cluster was lost; disconnecting anyway", DRAIN_S)
            await self._drop_bounded()
            await self._rejoin(reason, stop)

    async def _rejoin(self, reason: str, stop: asyncio.Event) -> None:
        address = self._options.address
        while not stop.is_set():
            if address and not await asyncio.to_thread(cluster.gcs_reachable, address):
                await asyncio.sleep(1.0)  # the given cluster is not back yet
                continue
            if await self.join(stop):
                self._events.back()
                log.info("Ray is back; redeploying every endpoint from the database")
                return
            self._events.still_lost(f"{reason}; joining again failed: {self._last_error}")
            try:
                await asyncio.wait_for(stop.wait(), timeout=REJOIN_WAIT_S)
            except TimeoutError:
                pass

    async def _lost_reason(self) -> str | None:
        """Why the cluster is gone, or None while it is there."""
        if self._head is not None:
            if self._head.alive():
                return None
            return f"Ray cluster unreachable: the local Ray head exited with {self._head.proc.returncode}"
        address = self._options.address
        if not address:
            return None
        if await asyncio.to_thread(cluster.gcs_reachable, address):
            return None
        return f"Ray cluster unreachable: no answer from its GCS at {address}"

    async def stop_serve(self) -> None:
        """Ends Serve on a cluster this server started (a joined cluster's Serve is left as is)."""
        if not self.runs_local_head:
            return
        try:
            await asyncio.wait_for(cluster.stop_serve(), timeout=60)
        except Exception:  # noqa: BLE001 - shutting down regardless
            log.exception("Serve shutdown failed")

    async def _drop_bounded(self) -> None:
        """_drop in a worker thread. ray.shutdown() against a dead GCS takes a while; the next
        join waits for it (a join while it runs has the shutdown tear down the new connection),
        up to DROP_S, then goes on."""
        drop = asyncio.ensure_future(asyncio.to_thread(self._drop))
        done, _ = await asyncio.wait({drop}, timeout=DROP_S)
        if not done:
            log.error("disconnecting from the lost Ray cluster took over %.0f s; joining anyway", DROP_S)
        elif drop.exception() is not None:
            log.error("disconnecting from Ray failed", exc_info=drop.exception())

    def _drop(self) -> None:
        """Disconnects, and ends the local head with every Ray process it started (blocking)."""
        head, self._head = self._head, None
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
        self._drop()
