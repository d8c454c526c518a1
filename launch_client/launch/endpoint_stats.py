"""Live endpoint figures (ModelEndpointService.GetModelEndpointStats) as EndpointStats values:
what `launch endpoints top` and `stats` show, for scripts too."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from launch.v1 import model_endpoint_pb2 as epb

if TYPE_CHECKING:
    from .connection import Connection

MAX_WINDOW_SECONDS = 60.0
MAX_NAMES = 100


@dataclass(frozen=True)
class EndpointStats:
    """One endpoint's figures over the last `window_seconds`: rates per second, end-to-end
    latency quantiles in seconds (0 when nothing finished in the window), and now-values.
    `workers_desired` is None until the autoscaler has decided once."""

    name: str
    endpoint_type: str
    status: str
    window_seconds: float
    requests_per_second: float
    errors_per_second: float
    p50_seconds: float
    p99_seconds: float
    in_flight: int
    tasks_queued: int
    oldest_queued_seconds: float
    workers_running: int
    workers_starting: int
    workers_desired: int | None
    min_workers: int
    max_workers: int
    requests_total: int
    failures_total: int

    @classmethod
    def from_proto(cls, message: epb.EndpointStats) -> EndpointStats:
        return cls(
            name=message.name,
            endpoint_type=epb.EndpointType.Name(message.endpoint_type).removeprefix("ENDPOINT_TYPE_").lower(),
            status=epb.EndpointStatus.Name(message.status).removeprefix("ENDPOINT_STATUS_"),
            window_seconds=message.window_seconds,
            requests_per_second=message.requests_per_second,
            errors_per_second=message.errors_per_second,
            p50_seconds=message.p50_seconds,
            p99_seconds=message.p99_seconds,
            in_flight=message.in_flight,
            tasks_queued=message.tasks_queued,
            oldest_queued_seconds=message.oldest_queued_seconds,
            workers_running=message.workers_running,
            workers_starting=message.workers_starting,
            workers_desired=message.workers_desired if message.HasField("workers_desired") else None,
            min_workers=message.min_workers,
            max_workers=message.max_workers,
            requests_total=message.requests_total,
            failures_total=message.failures_total,
        )


def get_endpoint_stats(
    connection: Connection, names: list[str] | None, window_seconds: float | None
) -> list[EndpointStats]:
    if window_seconds is not None and not (math.isfinite(window_seconds) and 0 < window_seconds <= MAX_WINDOW_SECONDS):
        raise ValueError(f"window_seconds must be above 0 and at most {MAX_WINDOW_SECONDS:.0f}")
    if names is not None and len(names) > MAX_NAMES:
        raise ValueError(f"at most {MAX_NAMES} names")
    response = connection.call(
        connection.endpoints.GetModelEndpointStats,
        epb.GetModelEndpointStatsRequest(names=names or [], window_seconds=window_seconds or 0.0),
        idempotent=True,
    )
    return [EndpointStats.from_proto(message) for message in response.endpoints]
