"""The dispatcher's direct route: a single async task goes to one of its endpoint's replicas over
the replica's own port (the listener sync endpoints use for the SDK's direct route, see
replica/listener.py), on a task channel (ReplicaService.RunTasks, replica_channel.py) that
stays open and carries one message per task each way, instead of a Serve handle call.

Why: of one async request's latency, a Serve handle call is the largest part the server controls,
and a new Predict call's own set-up the next; a message on a channel already open costs neither.
The replica counts these tasks in its load metric, so autoscaling still sees them. Tokens are minted
here, with the server's secret, for async endpoints only the server reaches this way
(GetModelEndpointRoute refuses async endpoints), so clients cannot bypass the queue.

A task that did not come back either never ran (never sent, the channel could not be opened, the
replica refused it): the dispatcher uses the Serve handle and skips that address for a while; or
may have run (the channel broke after it was sent): ReplicaDied, retried as a failed attempt
like a Serve replica that died. Channels ping the replica (keepalive), so a task on a node that
vanished fails instead of hanging. Groups of tasks keep using the handle (one call,
predict_many), as do endpoints whose replicas have no port yet (scaling from zero)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Coroutine
from typing import Any

import grpc
from launch.v1 import replica_pb2_grpc as rgrpc

from launch_server.domain.requests import InferenceAnswer, InferenceRequest
from launch_server.serving.replica_channel import replica_channel
from launch_server.serving.router import Router
from launch_server.task_queue.task_channel_client import ChannelBroken, NotRun, ReplicaChannel
from launch_server.wire.messages import answer_from_proto, request_to_proto
from launch_server.wire.route_tokens import expiry_of

log = logging.getLogger(__name__)
CONNECT_S = 1.0  # a replica port that does not connect within this is skipped for SKIP_S
SKIP_S = 10.0
IDLE_CLOSE_S = 60.0  # connections to replicas unused this long (scaled away, say) are closed


class DirectCallFailed(Exception):
    """The channel failed after the task was sent, for a reason other than the replica going away
    (a reply over the message limit, say): a failed attempt, with that reason."""


class ReplicaDied(Exception):
    """The channel broke after the task was sent: it may have run, so this counts as a failed
    attempt (retried, bounded), exactly like a Serve replica that died."""


class DirectCalls:
    """Shared by every async endpoint of the server; everything is keyed by replica address, and
    each address remembers its endpoint, so pruning one endpoint's route never touches another's."""

    def __init__(self, router: Router) -> None:
        self._router = router
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._tasks: dict[str, ReplicaChannel] = {}  # address -> its open task channel
        self._opening: dict[str, asyncio.Future[ReplicaChannel | None]] = {}
        self._endpoint_of: dict[str, str] = {}  # address -> endpoint id
        self._in_flight: Counter[str] = Counter()
        self._skip_until: dict[str, float] = {}
        self._last_used: dict[str, float] = {}
        self._answered: set[str] = set()  # addresses that answered once (logged once each)
        self._background: set[asyncio.Future[None]] = set()  # channels and connections closing
        self._next_prune = 0.0

    async def predict(
        self, endpoint_id: str, endpoint_name: str, app_name: str, request: InferenceRequest, timeout_s: float = 0.0
    ) -> InferenceAnswer | None:
        """The replica's answer as the handle would give it, or None when no replica took the task.
        The replica gives the task up after `timeout_s` of running (0: never); cancelling this call
        stops the task on the replica (replica_channel)."""
        try:
            route = await self._router.replica_route(endpoint_id, app_name)
        except Exception:  # noqa: BLE001 - the GCS lookup failed: the task has not run, use Serve
            log.warning("looking up the replicas of %s failed; using Serve", endpoint_name, exc_info=True)
            return None
        if route is None:
            return None
        addresses, token = route
        now = time.monotonic()
        self._prune(now, endpoint_id, set(addresses))
        usable = [a for a in addresses if self._skip_until.get(a, 0.0) <= now]
        if not usable:
            return None
        address = min(usable, key=lambda a: self._in_flight[a])
        self._endpoint_of[address] = endpoint_id
        self._last_used[address] = now
        self._in_flight[address] += 1  # counted before any await, so concurrent callers spread out
        try:
            channel = await self._task_channel(address, token, endpoint_name)
            if channel is None:
                return None
            result = await channel.run(request_to_proto(request), timeout_s)
        except NotRun as exc:
            return self._skip(address, endpoint_name, str(exc))
        except ChannelBroken as exc:
            self._skip_until[address] = time.monotonic() + SKIP_S
            what = f"replica {address} took the task, then {exc}"
            if exc.code in (None, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                raise ReplicaDied(what) from None
            raise DirectCallFailed(what) from None
        finally:
            self._in_flight[address] -= 1
        if address not in self._answered:
            self._answered.add(address)
            log.info("replica %s answered a task over its direct port", address)
        return answer_from_proto(result)

    async def _task_channel(self, address: str, token: str, endpoint_name: str) -> ReplicaChannel | None:
        """The open channel to `address`; a new one when the route token is newer than the
        channel's (the old one is closed once its tasks are answered); None, with the address
        skipped, when it cannot open. Callers that arrive while it opens share that opening."""
        current = self._tasks.get(address)
        if current is not None and current.usable and expiry_of(current.token) >= expiry_of(token):
            return current
        opening = self._opening.get(address)
        if opening is None:
            opening = self._opening[address] = asyncio.ensure_future(self._open(address, token, endpoint_name))
            opening.add_done_callback(lambda _: self._opening.pop(address, None))
        return await asyncio.shield(opening)

    async def _open(self, address: str, token: str, endpoint_name: str) -> ReplicaChannel | None:
        """Never raises: whatever goes wrong before a task is sent means the task did not run."""
        try:
            channel = self._channel(address)
            if channel.get_state(try_to_connect=True) is not grpc.ChannelConnectivity.READY:
                try:
                    await asyncio.wait_for(channel.channel_ready(), CONNECT_S)
                except (TimeoutError, grpc.RpcError):
                    self._skip(address, endpoint_name, "its port did not connect")
                    return None
            tasks = ReplicaChannel(rgrpc.ReplicaServiceStub(channel), token)
            await tasks.open(CONNECT_S)
        except NotRun as exc:
            self._skip(address, endpoint_name, f"its task channel did not open: {exc}")
            return None
        except Exception as exc:  # noqa: BLE001 - see the docstring
            self._skip(address, endpoint_name, f"its task channel did not open: {type(exc).__name__}: {exc}")
            return None
        old = self._tasks.get(address)
        self._tasks[address] = tasks
        if old is not None:
            self._in_background(old.close())  # finishes its tasks, then ends
        return tasks

    def _skip(self, address: str, endpoint_name: str, why: str) -> None:
        log.warning(
            "replica %s of %s did not take a task on its direct port (%s); using Serve for %.0f s",
            address,
            endpoint_name,
            why,
            SKIP_S,
        )
        self._skip_until[address] = time.monotonic() + SKIP_S

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = replica_channel(address, self._router.replica_ca_pem)
        return channel

    def _prune(self, now: float, endpoint_id: str, routed: set[str]) -> None:
        """Closes, in the background, this endpoint's task channels to replicas no longer in its
        route (scaled away: they are draining), and any connection unused for IDLE_CLOSE_S. Only
        addresses with nothing in flight or opening; decided and removed here, with no await in
        between, so no caller can pick up what is being closed."""
        for address, tasks in list(self._tasks.items()):
            if self._endpoint_of.get(address) == endpoint_id and address not in routed and not self._busy(address):
                del self._tasks[address]
                self._in_background(tasks.close())
        if now < self._next_prune:
            return
        self._next_prune = now + IDLE_CLOSE_S / 2
        idle = [a for a, used in self._last_used.items() if now - used > IDLE_CLOSE_S and not self._busy(a)]
        for address in idle:  # never one with a task in flight: a long task keeps its connection
            for table in (self._last_used, self._skip_until, self._in_flight, self._endpoint_of):
                table.pop(address, None)
            self._answered.discard(address)
            tasks = self._tasks.pop(address, None)
            channel = self._channels.pop(address, None)
            self._in_background(_close_both(tasks, channel))

    def _busy(self, address: str) -> bool:
        return self._in_flight[address] > 0 or address in self._opening

    def _in_background(self, closing: Coroutine[Any, Any, None]) -> None:
        job = asyncio.ensure_future(closing)
        self._background.add(job)
        job.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Server stopping: ends every channel now (tasks still out are left to their leases)."""
        for opening in list(self._opening.values()):
            opening.cancel()
        for tasks in self._tasks.values():
            tasks.cancel()
        self._tasks.clear()
        for job in list(self._background):
            job.cancel()
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()


async def _close_both(tasks: ReplicaChannel | None, channel: grpc.aio.Channel | None) -> None:
    if tasks is not None:
        await tasks.close()
    if channel is not None:
        await channel.close()
