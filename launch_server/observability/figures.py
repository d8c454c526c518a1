"""The figures one replica keeps about its own requests, and the snapshot format that carries
them to the servers (replica/metrics_reporter.py writes it, serving/replica_figures.py reads it).

Plain counters and fixed-bucket histograms under one lock, not prometheus_client objects: a
replica has no scrape port of its own (the servers are the one place to scrape), and what travels
is a small JSON document whose every label value comes from the closed sets below, so a snapshot
that names anything else is refused whole by the reader and cardinality stays bounded whatever a
replica (which runs user code) writes."""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from typing import Any

SNAPSHOT_VERSION = 1

KINDS = ("sync", "stream", "async_task", "batch_chunk")
PATHS = ("direct", "server", "channel")
OUTCOMES = ("success", "failure", "refused", "cancelled")
# What a replica can time itself: fetching the bundle, and loading it (unpickling or importing,
# then the user's load functions).
COLD_START_PHASES = ("bundle_download", "load")

# Seconds: from half a millisecond (a direct-route echo) to five minutes (a long task).
SECONDS_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
# Cold starts: a cached replica starts in about a second, a fresh pip environment in minutes.
COLD_START_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
# Batch sizes up to the largest max_batch_size an endpoint may set (1,024).
BATCH_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0)

HISTOGRAMS = {
    "queue_wait": SECONDS_BUCKETS,
    "compute": SECONDS_BUCKETS,
    "first_chunk": SECONDS_BUCKETS,
    "batch_size": BATCH_BUCKETS,
}


class Histogram:
    """Counts per bucket (`le` bounds, the last one +Inf) and the sum, as Prometheus keeps them."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def add(self, counts: list[int], total: float) -> None:
        for i, n in enumerate(counts):
            self.counts[i] += n
        self.total += total

    @property
    def count(self) -> int:
        return sum(self.counts)

    def to_json(self) -> list[Any]:
        return [list(self.counts), self.total]


class ReplicaFigures:
    """What one replica counted since it started. Safe to update from the replica loop and the
    predict pool's threads at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, str], int] = {}
        self.durations: dict[tuple[str, str], Histogram] = {}
        self.histograms = {name: Histogram(bounds) for name, bounds in HISTOGRAMS.items()}
        self.cold_start = {phase: Histogram(COLD_START_BUCKETS) for phase in COLD_START_PHASES}
        self.in_flight = 0
        self.enabled = True  # False: every update is a no-op (the servers run with metrics off)

    def started(self) -> float:
        """One request arrived; the clock value to give finished()."""
        if not self.enabled:
            return 0.0
        with self._lock:
            self.in_flight += 1
        return time.perf_counter()

    def finished(self, kind: str, path: str, outcome: str, started: float) -> None:
        """The request that started() at `started` was answered (or refused, or given up)."""
        if not self.enabled:
            return
        seconds = time.perf_counter() - started
        key = (kind, path, outcome)
        with self._lock:
            self.in_flight -= 1
            self.requests[key] = self.requests.get(key, 0) + 1
            if outcome == "refused":  # never ran (it is sent again elsewhere): not a duration
                return
            histogram = self.durations.get((kind, path))
            if histogram is None:
                histogram = self.durations[(kind, path)] = Histogram(SECONDS_BUCKETS)
            histogram.observe(seconds)

    def observe(self, name: str, value: float) -> None:
        """One value of the named histogram (HISTOGRAMS)."""
        if not self.enabled:
            return
        with self._lock:
            self.histograms[name].observe(value)

    def observe_many(self, name: str, values: list[float]) -> None:
        if not self.enabled:
            return
        with self._lock:
            histogram = self.histograms[name]
            for value in values:
                histogram.observe(value)

    def cold_start_phase(self, phase: str, seconds: float) -> None:
        if not self.enabled:
            return
        with self._lock:
            self.cold_start[phase].observe(max(0.0, seconds))

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """The JSON document the servers read (see parse_snapshot)."""
        with self._lock:
            return {
                "v": SNAPSHOT_VERSION,
                "written": time.time() if now is None else now,
                "in_flight": self.in_flight,
                "requests": [[*key, n] for key, n in self.requests.items()],
                "durations": [[*key, *h.to_json()] for key, h in self.durations.items()],
                "histograms": {name: h.to_json() for name, h in self.histograms.items()},
                "cold_start": {phase: h.to_json() for phase, h in self.cold_start.items()},
            }


# ---- reading a snapshot (on the servers) ---------------------------------------------------------


class SnapshotError(ValueError):
    """A snapshot that does not have the documented shape; the reader skips it whole."""


# Counts and sums above these are no replica's (2**53: a float still counts every request exactly).
MAX_COUNT = 2**53
MAX_TOTAL = 1e15


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_COUNT:
        raise SnapshotError(f"not a count: {value!r}")
    return value


def _total(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not -MAX_TOTAL <= value <= MAX_TOTAL:
        raise SnapshotError(f"not a finite sum: {value!r}")  # NaN fails the comparison too
    return float(value)


def _histogram(value: Any, bounds: tuple[float, ...]) -> Histogram:
    if not isinstance(value, list) or len(value) != 2 or not isinstance(value[0], list):
        raise SnapshotError("a histogram is [counts, sum]")
    counts = [_count(n) for n in value[0]]
    if len(counts) != len(bounds) + 1:
        raise SnapshotError(f"a histogram has {len(bounds) + 1} buckets, not {len(counts)}")
    histogram = Histogram(bounds)
    histogram.add(counts, _total(value[1]))
    return histogram


def _label(value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise SnapshotError(f"unknown label value {value!r}")
    return str(value)


def parse_snapshot(data: Any) -> tuple[float, ReplicaFigures]:
    """(when it was written, the figures) from a decoded snapshot; SnapshotError when any part of
    it is not what ReplicaFigures.snapshot writes."""
    if not isinstance(data, dict) or data.get("v") != SNAPSHOT_VERSION:
        raise SnapshotError("not a version-1 snapshot")
    try:
        figures = ReplicaFigures()
        figures.in_flight = _count(data["in_flight"])
        for kind, path, outcome, n in data["requests"]:
            key = (_label(kind, KINDS), _label(path, PATHS), _label(outcome, OUTCOMES))
            figures.requests[key] = figures.requests.get(key, 0) + _count(n)
        for kind, path, counts, total in data["durations"]:
            key2 = (_label(kind, KINDS), _label(path, PATHS))
            figures.durations[key2] = _histogram([counts, total], SECONDS_BUCKETS)
        for name, bounds in HISTOGRAMS.items():
            figures.histograms[name] = _histogram(data["histograms"][name], bounds)
        for phase in COLD_START_PHASES:
            figures.cold_start[phase] = _histogram(data["cold_start"][phase], COLD_START_BUCKETS)
        return _total(data["written"]), figures
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        if isinstance(exc, SnapshotError):
            raise
        raise SnapshotError(f"malformed snapshot: {exc}") from None


def merged(parts: list[ReplicaFigures]) -> ReplicaFigures:
    """The sum of several replicas' figures (counters, histograms and in-flight gauges alike)."""
    total = ReplicaFigures()
    for part in parts:
        total.in_flight += part.in_flight
        for key, n in part.requests.items():
            total.requests[key] = total.requests.get(key, 0) + n
        for key2, h in part.durations.items():
            into = total.durations.get(key2)
            if into is None:
                into = total.durations[key2] = Histogram(SECONDS_BUCKETS)
            into.add(h.counts, h.total)
        for name, h in part.histograms.items():
            total.histograms[name].add(h.counts, h.total)
        for phase, h in part.cold_start.items():
            total.cold_start[phase].add(h.counts, h.total)
    return total
