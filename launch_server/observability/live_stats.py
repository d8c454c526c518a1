"""Live endpoint figures over a recent window (request rate, errors, latency quantiles), for
owners who look without Prometheus (ModelEndpointService.GetModelEndpointStats, `launch
endpoints top`).

The replica figures are running totals; a rate needs two of them some seconds apart. The reader
(serving/replica_figures.py) records each application's totals here on every read, and a window
is the difference between the newest record and the newest one at least the window older (or the
oldest kept, just after start-up). Quantiles come from that difference of the end-to-end duration
histogram, interpolated within a bucket the way PromQL's histogram_quantile does. HISTORY_S of
records are kept per application: a few kB each."""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from dataclasses import dataclass

from launch_server.observability.figures import SECONDS_BUCKETS, ReplicaFigures

HISTORY_S = 65.0
MAX_WINDOW_S = 60.0
DEFAULT_WINDOW_S = 10.0


@dataclass(frozen=True)
class Totals:
    """One application's running totals at one moment (this server's monotonic clock)."""

    at: float
    answered: int  # every request but refusals (they are sent again elsewhere)
    failed: int
    durations: tuple[int, ...]  # end-to-end duration bucket counts over every kind and path

    @classmethod
    def of(cls, at: float, figures: ReplicaFigures) -> Totals:
        answered = sum(n for (_, _, outcome), n in figures.requests.items() if outcome != "refused")
        failed = sum(n for (_, _, outcome), n in figures.requests.items() if outcome == "failure")
        counts = [0] * (len(SECONDS_BUCKETS) + 1)
        for histogram in figures.durations.values():
            for i, n in enumerate(histogram.counts):
                counts[i] += n
        return cls(at, answered, failed, tuple(counts))


@dataclass(frozen=True)
class WindowFigures:
    """What happened in the window: rates per second and end-to-end quantiles in seconds (0
    when no request was timed in it); `seconds` is the window actually covered."""

    seconds: float
    requests_per_second: float
    errors_per_second: float
    p50_seconds: float
    p99_seconds: float
    requests_total: int
    failures_total: int


def quantile(q: float, counts: list[int], bounds: tuple[float, ...] = SECONDS_BUCKETS) -> float:
    """The q-quantile of a histogram's per-bucket counts (the last bucket +Inf, whose values
    read as the largest finite bound), interpolated linearly within its bucket."""
    total = sum(counts)
    if total <= 0:
        return 0.0
    rank = q * total
    running = 0
    for i, n in enumerate(counts):
        if n and running + n >= rank:
            if i >= len(bounds):
                return bounds[-1]
            lower = bounds[i - 1] if i > 0 else 0.0
            return lower + (bounds[i] - lower) * ((rank - running) / n)
        running += n
    return bounds[-1]


class StatsHistory:
    """Recent totals per application; fed by one thread, read by others (values are replaced,
    never changed in place)."""

    def __init__(self) -> None:
        self._records: dict[str, deque[Totals]] = {}

    def record(self, app_name: str, totals: Totals) -> None:
        records = self._records.get(app_name)
        if records is None:
            records = self._records[app_name] = deque()
        records.append(totals)
        while records and totals.at - records[0].at > HISTORY_S:
            records.popleft()

    def keep_only(self, app_names: set[str]) -> None:
        for app_name in set(self._records) - app_names:
            self._records.pop(app_name, None)

    def window(self, app_name: str, seconds: float, now: float | None = None) -> WindowFigures:
        """The window ending at the newest record; nothing happened in it when even that is
        older than the window (the reads stopped: Ray is lost), rather than the last rates
        standing still."""
        records = list(self._records.get(app_name, ()))
        if not records:
            return WindowFigures(0.0, 0.0, 0.0, 0.0, 0.0, 0, 0)
        newest = records[-1]
        if now is not None and now - newest.at > seconds:
            return WindowFigures(0.0, 0.0, 0.0, 0.0, 0.0, newest.answered, newest.failed)
        times = [r.at for r in records]
        start = records[max(0, bisect_left(times, newest.at - seconds + 1e-9) - 1)]
        span = newest.at - start.at
        counts = [max(0, a - b) for a, b in zip(newest.durations, start.durations, strict=True)]
        rate = (lambda n: max(0, n) / span) if span > 0 else (lambda n: 0.0)
        return WindowFigures(
            seconds=span,
            requests_per_second=rate(newest.answered - start.answered),
            errors_per_second=rate(newest.failed - start.failed),
            p50_seconds=quantile(0.5, counts),
            p99_seconds=quantile(0.99, counts),
            requests_total=newest.answered,
            failures_total=newest.failed,
        )
