"""Moves queued tasks to replicas. For each async endpoint that is serving, it claims pending
tasks under a lease and keeps up to per_worker × max_workers replica calls in flight: enough for
the autoscaler to see the queue and scale up to max_workers (and from zero), but bounded, so a
million queued tasks never become a million in-memory requests. When more tasks wait than calls
are free, it sends them in groups through a Serve handle (up to `group_max` per call, run one by
one by the replica and answered separately), paying the per-call overhead once per group; a
single task goes over the replica's own port (direct_calls), one hop.

Delivery is at-least-once: a task whose replica dies is put back (bounded attempts), and a task
whose server dies is taken over when its lease passes. While the Ray cluster is lost no endpoint
is serving, so nothing is claimed; calls it broke are put back with their attempt given back.

Every call carries its endpoint's task_timeout_seconds: the replica gives a task up once it has
run that long and answers FAILURE (replica/stoppable), so its lease stops renewing and its call
slot is freed; should the replica not answer at all, the call is given up here a little later
(BACKSTOP_S). A cancelled task's call is stopped: at once when this server runs it (cancel),
else by the server that does, when its next lease renewal finds the task CANCELLED. A call that
carries a group of tasks is stopped only for its deadline: a cancelled task in a group runs to
its end on the replica, and its result is dropped (the stored state stays CANCELLED)."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable

from launch_server.domain.endpoints import MAX_TASK_TIMEOUT_S, EndpointType, is_batch_endpoint
from launch_server.domain.live_endpoints import LiveEndpoints
from launch_server.domain.requests import ChunkRequest, InferenceAnswer, InferenceRequest
from launch_server.domain.task_queue_ports import ClaimedTask, TaskLeases
from launch_server.domain.tasks import Outcome, Task, TaskState
from launch_server.serving.router import Router
from launch_server.task_queue.direct_calls import DirectCalls
from launch_server.task_queue.watch import WatchHub

log = logging.getLogger(__name__)
REPLICA_GONE = ("ActorDiedError", "RayActorError", "ActorUnavailableError", "WorkerCrashedError", "ReplicaDied")
# How long after a call's own deadline (task_timeout_seconds per task in it) the server stops
# waiting for a replica that never answered: the replica's clock starts when it starts the task.
BACKSTOP_S = 30.0
RAY_VERDICT_S = 3.0  # see _ray_went_down


class Dispatcher:
    """Also the task writer's Admission (task_queue/admission.py): it lends free call slots to
    submissions that can start at once. `on_finished` hears of every task it finished (the
    callback sender's wake-up)."""

    def __init__(
        self,
        repo: TaskLeases,
        live: LiveEndpoints,
        router: Router,
        watchers: WatchHub,
        *,
        on_finished: Callable[[list[Task]], object] = lambda tasks: None,
        lease_s: float = 60.0,
        max_attempts: int = 3,
        group_max: int = 64,
        idle_poll_s: float = 0.2,
    ) -> None:
        self.repo = repo
        self.live = live
        self.router = router
        self.watchers = watchers
        self.on_finished = on_finished
        self.direct = DirectCalls(router)
        self.lease_s = lease_s
        self.max_attempts = max_attempts
        self.group_max = group_max
        self.idle_poll_s = idle_poll_s
        self.worker = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.calls_in_flight: dict[str, int] = defaultdict(int)
        self.leased_task_ids: set[str] = set()  # tasks whose leases this server renews
        self._calls: dict[str, asyncio.Task[list[Outcome]]] = {}  # task id -> its single-task call
        self._in_flight: set[asyncio.Future[list[Outcome]]] = set()  # every replica call (abandon_calls)
        # Per endpoint, a moving average of how long one admitted task's call took (answers_within).
        self.answer_s: dict[str, float] = {}
        self._woken = asyncio.Event()
        self._running: set[asyncio.Task] = set()
        # Endpoints that may have pending tasks in the database. The idle poll clears nothing, it
        # only checks (read-only) so tasks submitted through another server are found too.
        self.backlog: set[str] = set()

    def wake(self, endpoint_id: str | None = None) -> None:
        """Tasks were queued (for `endpoint_id`, when known): look for them now."""
        if endpoint_id is not None:
            self.backlog.add(endpoint_id)
        self._woken.set()

    # ---- admission: submissions that can start at once skip the claim step ----------------------

    def _free_calls(self, endpoint_id: str) -> int:
        """Call slots free on a serving endpoint (capacity is 0 while it does not serve)."""
        return self.live.capacity(endpoint_id) - self.calls_in_flight[endpoint_id]

    def reserve(self, endpoint_id: str, count: int) -> tuple[int, str, float]:
        free = self._free_calls(endpoint_id)
        reserved = max(0, min(free, count))
        self.calls_in_flight[endpoint_id] += reserved
        return reserved, self.worker, self.lease_s

    def start(
        self, endpoint_id: str, tasks: list[Task], reserved: int, durable: asyncio.Future[list[Task] | None]
    ) -> list[asyncio.Future[Outcome | None]]:
        """Starts the replica calls of a submission's admitted tasks (while their rows are being
        written, or after, see task_queue/admission.py); unused reservations are given back.
        Returns each task's answer to come (None when its call failed)."""
        self.calls_in_flight[endpoint_id] -= reserved - len(tasks)
        route = self.live.route(endpoint_id)
        loop = asyncio.get_running_loop()
        answers: list[asyncio.Future[Outcome | None]] = []
        for task in tasks:
            claimed = ClaimedTask(task.task_id, task.work, task.attempts, task)
            self.leased_task_ids.add(task.task_id)
            app = route.app_name if route is not None else ""
            answer: asyncio.Future[Outcome | None] = loop.create_future()
            answers.append(answer)
            job = asyncio.create_task(self._run_group(endpoint_id, app, [claimed], durable, answer))
            self._running.add(job)
            job.add_done_callback(self._running.discard)
        return answers

    def cancel(self, task_id: str) -> bool:
        """Stops the replica call of a cancelled task this server runs alone on a call; whether it
        had one. Its row is already CANCELLED, so nothing more is written for it."""
        call = self._calls.get(task_id)
        if call is None or call.done():
            return False
        call.cancel()
        return True

    def abandon_calls(self) -> None:
        """The Ray cluster is gone: calls waiting on it would wait out their deadline (a Serve
        handle holds them), so they are stopped now and their tasks put back for the next one."""
        for call in list(self._in_flight):
            call.cancel()

    def answers_within(self, endpoint_id: str, hold_s: float) -> bool:
        """Whether this endpoint's recent single-task calls took less than `hold_s` (an endpoint
        not yet timed counts as quick: the hold bounds what a wrong guess costs)."""
        typical = self.answer_s.get(endpoint_id)
        return typical is None or typical < hold_s

    async def run(self, stop: asyncio.Event) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(stop))
        try:
            while not stop.is_set():
                self._woken.clear()
                try:
                    progressed = await self.dispatch_once()
                except Exception:  # noqa: BLE001 - the loop must outlive any one failure
                    log.exception("dispatch pass failed")
                    progressed = False
                if not progressed:
                    try:
                        await asyncio.wait_for(self._woken.wait(), timeout=self.idle_poll_s)
                    except TimeoutError:
                        try:
                            await self._find_backlog()
                        except Exception:  # noqa: BLE001 - a database outage must not end the loop
                            log.exception("backlog poll failed")
        finally:
            heartbeat.cancel()
            for task in list(self._running):
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)
            await self.direct.close()

    async def _find_backlog(self) -> None:
        """Idle poll: a read-only count finds tasks queued through other servers (or left by a
        restart), without taking SQLite's write lock."""
        async_ids = [e.endpoint_id for e in self.live.endpoints() if e.settings.endpoint_type is EndpointType.ASYNC]
        if async_ids:
            counts = await asyncio.to_thread(self.repo.pending_counts, async_ids)
            self.backlog.update(endpoint_id for endpoint_id, count in counts.items() if count)

    async def dispatch_once(self) -> bool:
        progressed = False
        for endpoint in self.live.endpoints():
            if endpoint.settings.endpoint_type is not EndpointType.ASYNC:
                continue
            route = self.live.route(endpoint.endpoint_id)
            if route is None or not route.serving:
                continue
            free_calls = self._free_calls(endpoint.endpoint_id)
            if free_calls <= 0:
                continue
            if endpoint.endpoint_id not in self.backlog:
                continue
            # A batch job's task is already a chunk of inputs: one per call keeps progress and
            # retries at the chunk's grain.
            group_max = 1 if is_batch_endpoint(endpoint.name) else self.group_max
            wanted = free_calls * group_max
            claimed = await asyncio.to_thread(self.repo.claim, endpoint.endpoint_id, wanted, self.worker, self.lease_s)
            if len(claimed) < wanted:
                self.backlog.discard(endpoint.endpoint_id)  # drained for now
            if not claimed:
                continue
            progressed = True
            self.leased_task_ids.update(c.task_id for c in claimed)
            groups = min(free_calls, len(claimed))
            size = math.ceil(len(claimed) / groups)
            for start in range(0, len(claimed), size):
                group = claimed[start : start + size]
                self.calls_in_flight[endpoint.endpoint_id] += 1
                job = asyncio.create_task(self._run_group(endpoint.endpoint_id, route.app_name, group))
                self._running.add(job)
                job.add_done_callback(self._running.discard)
        return progressed

    async def _run_group(
        self,
        endpoint_id: str,
        app_name: str,
        group: list[ClaimedTask],
        durable: asyncio.Future[list[Task] | None] | None = None,
        answer: asyncio.Future[Outcome | None] | None = None,
    ) -> None:
        """Runs a group on the endpoint's replicas and writes each outcome. For an admitted
        submission's task, `answer` gets the outcome as soon as the replica gives it, and
        `durable` settles with the rows as their own write committed them: nothing is written for
        rows that were never committed, nor for a row that was written already finished."""
        ids = [c.task_id for c in group]
        finished: list[Task] = []
        try:
            started = time.monotonic()
            outcomes, failure = await self._call_with_deadline(endpoint_id, app_name, group)
            if answer is not None:
                self._timed(endpoint_id, time.monotonic() - started)
                answer.set_result(outcomes[0] if failure is None and outcomes else None)
            if failure is None and not outcomes:
                return  # cancelled: the row says so already
            if durable is not None:
                # Shielded: cancelling this job (server stopping) must not cancel the future that
                # the submission's other jobs share.
                rows = await asyncio.shield(durable)
                if rows is None:
                    return
                stored = [row for row in rows if row.task_id in ids]
                if stored and all(row.terminal for row in stored):
                    finished = stored  # written already finished (the submission held its row back)
                    return
            finished = await self._record(endpoint_id, group, outcomes, failure)
        finally:
            self.calls_in_flight[endpoint_id] -= 1
            self.leased_task_ids.difference_update(ids)
            for task_id in ids:
                self._calls.pop(task_id, None)
            if endpoint_id in self.backlog:
                self._woken.set()  # a call slot is free and tasks are waiting
            self._publish(finished)

    async def _call_with_deadline(
        self, endpoint_id: str, app_name: str, group: list[ClaimedTask]
    ) -> tuple[list[Outcome], Exception | None]:
        """The group's outcomes, or the failure to retry it for; ([], None) when its task was
        cancelled (cancel). A replica that does not answer within the group's deadline plus
        BACKSTOP_S is given up on: its tasks fail for their timeout."""
        timeout_s = self._timeout_s(endpoint_id)
        call = asyncio.ensure_future(self._call_replica(endpoint_id, app_name, group, timeout_s))
        if len(group) == 1:
            self._calls[group[0].task_id] = call
        self._in_flight.add(call)
        try:
            done, _ = await asyncio.wait({call}, timeout=timeout_s * len(group) + BACKSTOP_S)
        except asyncio.CancelledError:
            call.cancel()  # server stopping: the leases lapse and another server (or this one) retries
            raise
        finally:
            self._in_flight.discard(call)
        if call.cancelled() and self.live.ray_down:
            return [], ConnectionError(self.live.ray_down)  # abandon_calls: put back, attempt refunded
        if not done:
            call.cancel()
            log.warning("a call of %d task(s) on %s did not answer by its deadline", len(group), endpoint_id)
            why = f"task exceeded its endpoint's task_timeout_seconds={timeout_s:g} (the replica did not answer)"
            return [Outcome(task_id=c.task_id, state=TaskState.FAILURE, traceback=why) for c in group], None
        if call.cancelled():
            return [], None
        failure = call.exception()
        if failure is None:
            return call.result(), None
        if not isinstance(failure, Exception):
            raise failure
        return [], failure  # a failed call is retried, never lost

    def _timeout_s(self, endpoint_id: str) -> float:
        endpoint = self.live.endpoint(endpoint_id)
        return float(endpoint.settings.task_timeout_seconds if endpoint is not None else MAX_TASK_TIMEOUT_S)

    def _timed(self, endpoint_id: str, seconds: float) -> None:
        previous = self.answer_s.get(endpoint_id)
        self.answer_s[endpoint_id] = seconds if previous is None else 0.8 * previous + 0.2 * seconds

    async def _record(
        self, endpoint_id: str, group: list[ClaimedTask], outcomes: list[Outcome], failure: Exception | None
    ) -> list[Task]:
        """Writes the outcomes, or puts the group back for a retry when the call failed. A write
        that fails leaves the leases to lapse, so the tasks are retried, never lost."""
        ids = [c.task_id for c in group]
        try:
            if failure is None:
                known = {c.task_id: c.task for c in group if c.task is not None}
                return await asyncio.to_thread(self.repo.complete, outcomes, self.worker, known)
            kind = type(failure).__name__
            reason = "the worker died while running it" if kind in REPLICA_GONE else f"{kind}: {failure}"
            refund = await self._ray_went_down()
            if refund:
                reason = f"{self.live.ray_down} (the attempt does not count)"
            log.warning("group of %d task(s) on %s failed (%s); releasing for retry", len(ids), endpoint_id, reason)
            return await asyncio.to_thread(self.repo.release, ids, self.worker, reason, self.max_attempts, refund)
        except Exception:  # noqa: BLE001 - the dispatcher must outlive a database error
            log.exception("recording %d task(s) on %s failed; their leases will lapse", len(ids), endpoint_id)
            return []

    async def _ray_went_down(self) -> bool:
        """Whether a failed call failed because the whole Ray cluster is gone: then its tasks
        wait for the next cluster without burning an attempt. The server notices a lost cluster
        within a second or two of the calls failing, so this waits that long for the verdict."""
        deadline = time.monotonic() + RAY_VERDICT_S
        while not self.live.ray_down and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
        return bool(self.live.ray_down)

    async def _call_replica(
        self, endpoint_id: str, app_name: str, group: list[ClaimedTask], timeout_s: float
    ) -> list[Outcome]:
        """One call for the group (the replica runs its tasks one by one, each stopped after
        `timeout_s`); one outcome each. A single request goes over the replica's own port when it
        has one (direct_calls), else, like a group or a batch job's chunk, through a Serve handle.
        Cancelling it stops the call on the replica."""
        answers: list[InferenceAnswer] | None = None
        first = group[0].work
        if len(group) == 1 and isinstance(first, InferenceRequest):
            endpoint = self.live.endpoint(endpoint_id)
            if endpoint is not None:
                answer = await self.direct.predict(endpoint_id, endpoint.name, app_name, first, timeout_s)
                answers = None if answer is None else [answer]
        if answers is None:
            handle = await self.router.handle(app_name)
            if len(group) > 1:
                response = handle.predict_many.remote([c.work for c in group], timeout_s)
            elif isinstance(first, ChunkRequest):
                response = handle.run_chunk.remote(first, timeout_s)
            else:
                response = handle.remote(first, timeout_s)
            try:
                reply = await response
            except asyncio.CancelledError:
                response.cancel()  # Serve cancels the replica's method, which gives the call up
                raise
            answers = reply if len(group) > 1 else [reply]
        return [Outcome.of(c.task_id, a) for c, a in zip(group, answers, strict=True)]

    def _publish(self, finished: list[Task]) -> None:
        if finished:
            self.watchers.publish(finished)
            self.on_finished(finished)

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        """Extends the leases of tasks this server is running, so long tasks are not taken over."""
        while not stop.is_set():
            await asyncio.sleep(self.lease_s / 3)
            try:
                cancelled = await asyncio.to_thread(
                    self.repo.extend_leases, list(self.leased_task_ids), self.worker, self.lease_s
                )
            except Exception:  # noqa: BLE001
                log.exception("lease heartbeat failed")
                continue
            for task_id in cancelled:  # cancelled through another server: stop the call here
                self.cancel(task_id)
