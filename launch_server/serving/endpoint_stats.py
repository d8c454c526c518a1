"""An owner's live endpoint figures (ModelEndpointService.GetModelEndpointStats), from what the
server already holds in memory: the serving layer's endpoints and worker counts, the replica
figures' recent history (serving/replica_figures.py, observability/live_stats.py), the
autoscaler's desired workers and the task queue's depths. No database or Ray call, so `launch
endpoints top` refreshing every couple of seconds costs the server next to nothing. Only the
caller's endpoints are considered, and batch jobs' own endpoints are left out, as listings do."""

from __future__ import annotations

import time
from dataclasses import dataclass

from launch_server.domain.endpoints import Endpoint, EndpointType, is_batch_endpoint
from launch_server.domain.errors import NotFound
from launch_server.domain.live_endpoints import LiveEndpoints
from launch_server.observability.live_stats import WindowFigures
from launch_server.serving.replica_figures import ReplicaFiguresReader
from launch_server.task_queue.queue_figures import QueueFigures

MAX_NAMES = 100


@dataclass(frozen=True)
class EndpointStats:
    endpoint: Endpoint
    window: WindowFigures
    in_flight: int
    tasks_queued: int
    oldest_queued_s: float
    workers_running: int
    workers_starting: int
    workers_desired: int | None  # None until the autoscaler has decided once


class EndpointStatsReader:
    def __init__(self, live: LiveEndpoints, figures: ReplicaFiguresReader, queue: QueueFigures) -> None:
        self._live = live
        self._figures = figures
        self._queue = queue

    def of(self, owner: str, names: list[str], window_s: float) -> list[EndpointStats]:
        """The named endpoints' figures (every one of the owner's when `names` is empty), by
        name; NotFound for a name the owner has no endpoint of."""
        mine = {e.name: e for e in self._live.endpoints() if e.owner == owner and not is_batch_endpoint(e.name)}
        for name in names:
            if name not in mine:
                raise NotFound("model endpoint", name)
        chosen = [mine[name] for name in sorted(set(names))] if names else sorted(mine.values(), key=lambda e: e.name)
        figures = self._figures.by_app()
        return [self._stats(endpoint, figures, window_s) for endpoint in chosen]

    def _stats(self, endpoint: Endpoint, figures: dict, window_s: float) -> EndpointStats:
        app_name = self._live.app_name(endpoint)
        route = self._live.route(endpoint.endpoint_id)
        app_figures = figures.get(app_name)
        depth = (
            self._queue.depth(endpoint.endpoint_id) if endpoint.settings.endpoint_type is EndpointType.ASYNC else None
        )
        return EndpointStats(
            endpoint=endpoint,
            window=self._figures.history.window(app_name, window_s, time.monotonic()),
            in_flight=app_figures.in_flight if app_figures is not None else 0,
            tasks_queued=depth.queued if depth is not None else 0,
            oldest_queued_s=self._queue.oldest_age_s(endpoint.endpoint_id) if depth is not None else 0.0,
            workers_running=route.available_workers if route else 0,
            workers_starting=route.unavailable_workers if route else 0,
            workers_desired=self._figures.desired_workers(app_name),
        )
