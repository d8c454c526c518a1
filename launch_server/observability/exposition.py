"""What a server's metrics port serves: its own RPC figures (prometheus_client objects in the
server's registry) and, through one custom collector, every endpoint's replica figures and
worker counts, labelled by endpoint name and owner.

Labels never come from a client or a replica as free text: endpoint and owner are the endpoint's
own (as the serving layer knows it), and kind, path, outcome and phase are closed sets
(observability/figures.py). Series per endpoint are therefore bounded (docs/metrics.md counts
them), and a deleted endpoint's series go with it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from launch_server.domain.endpoints import EndpointType
from launch_server.domain.live_endpoints import LiveEndpoints
from launch_server.observability.figures import (
    BATCH_BUCKETS,
    SECONDS_BUCKETS,
    ReplicaFigures,
)
from launch_server.observability.figures import (
    Histogram as FixedHistogram,
)

log = logging.getLogger(__name__)

ENDPOINT_LABELS = ["endpoint", "owner"]
HISTOGRAM_FAMILIES = {
    # figures name -> (metric name, help, bounds)
    "queue_wait": (
        "launch_request_queue_wait_seconds",
        "Time a request waited in the replica before its predict call started (the predict pool's queue, or a batch).",
        SECONDS_BUCKETS,
    ),
    "compute": (
        "launch_predict_call_seconds",
        "Time one call of the user's predict function took (a batch function's call counts once).",
        SECONDS_BUCKETS,
    ),
    "first_chunk": (
        "launch_stream_first_chunk_seconds",
        "Time from a stream's arrival at the replica to its first chunk.",
        SECONDS_BUCKETS,
    ),
    "batch_size": ("launch_batch_size", "Requests in each batch a batch function ran.", BATCH_BUCKETS),
}


class ServerMetrics:
    """The server process's own figures, in their own registry (not prometheus_client's global
    one, so tests and several servers in one process never share counters)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.rpcs = Counter(
            "launch_server_rpcs",
            "RPCs the server answered, by full method name and gRPC status code.",
            ["method", "code"],
            registry=self.registry,
        )
        self.rpc_seconds = Histogram(
            "launch_server_rpc_duration_seconds",
            "Time from an RPC's arrival to its last message, by full method name.",
            ["method"],
            buckets=SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.upload_bytes = Counter(
            "launch_bundle_upload_bytes",
            "Bytes of bundle artifacts uploaded to this server, by owner.",
            ["owner"],
            registry=self.registry,
        )


class QueueSource(Protocol):
    """The async queues' depths (task_queue/queue_figures.py)."""

    def depth(self, endpoint_id: str) -> Any: ...

    def oldest_age_s(self, endpoint_id: str) -> float: ...


@dataclass(frozen=True)
class EndpointSource:
    """Where the endpoint collector reads: the serving layer's view of endpoints, the replica
    figures and the autoscaler's desired workers per Serve application
    (serving/replica_figures.py), and the task queue's depths."""

    live: LiveEndpoints
    figures_by_app: Callable[[], dict[str, ReplicaFigures]]
    desired_workers: Callable[[str], int | None]
    queue: QueueSource


def _buckets(histogram: FixedHistogram) -> list[tuple[str, float]]:
    """Cumulative `le` buckets, as the text format wants them."""
    out, running = [], 0
    for bound, n in zip(histogram.bounds, histogram.counts, strict=False):
        running += n
        out.append((repr(float(bound)), float(running)))
    out.append(("+Inf", float(running + histogram.counts[-1])))
    return out


class EndpointCollector(Collector):
    """Renders every endpoint's figures at scrape time, from memory (no database, no Ray call)."""

    def __init__(self, source: EndpointSource) -> None:
        self._source = source
        self._lock = threading.Lock()

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: its families depend on what is deployed

    def collect(self) -> Iterator[Metric]:
        with self._lock:  # one scrape at a time builds them; none is held while they are written
            families = self._families()
        yield from families

    def _families(self) -> list[Metric]:
        live = self._source.live
        figures = self._source.figures_by_app()
        requests = CounterMetricFamily(
            "launch_requests", "Requests the replicas answered.", labels=[*ENDPOINT_LABELS, "kind", "path", "outcome"]
        )
        durations = HistogramMetricFamily(
            "launch_request_duration_seconds",
            "Time from a request's arrival at the replica to its answer (a stream: to its end).",
            labels=[*ENDPOINT_LABELS, "kind", "path"],
        )
        histograms = {
            name: HistogramMetricFamily(metric, help_text, labels=ENDPOINT_LABELS)
            for name, (metric, help_text, _) in HISTOGRAM_FAMILIES.items()
        }
        cold = HistogramMetricFamily(
            "launch_replica_cold_start_seconds",
            "Time each replica took to start, by phase (bundle download, load).",
            labels=[*ENDPOINT_LABELS, "phase"],
        )
        in_flight = GaugeMetricFamily(
            "launch_requests_in_flight", "Requests the replicas hold now.", labels=ENDPOINT_LABELS
        )
        workers = GaugeMetricFamily(
            "launch_workers", "Workers (replicas) by state: running, or starting.", labels=[*ENDPOINT_LABELS, "state"]
        )
        bounds = GaugeMetricFamily(
            "launch_workers_limit", "The endpoint's min_workers and max_workers.", labels=[*ENDPOINT_LABELS, "limit"]
        )
        desired = GaugeMetricFamily(
            "launch_workers_desired",
            "Workers the autoscaler asks for now, within the endpoint's bounds (before Serve's scaling delays).",
            labels=ENDPOINT_LABELS,
        )
        queued = GaugeMetricFamily(
            "launch_tasks_queued", "Async tasks waiting for a worker (PENDING).", labels=ENDPOINT_LABELS
        )
        oldest = GaugeMetricFamily(
            "launch_tasks_oldest_queued_age_seconds",
            "How long the oldest waiting async task has waited; 0 when none waits.",
            labels=ENDPOINT_LABELS,
        )
        for endpoint in live.endpoints():
            labels = [endpoint.name, endpoint.owner]
            settings = endpoint.settings
            app_name = live.app_name(endpoint)
            bounds.add_metric([*labels, "min"], settings.min_workers)
            bounds.add_metric([*labels, "max"], settings.max_workers)
            route = live.route(endpoint.endpoint_id)
            workers.add_metric([*labels, "running"], route.available_workers if route else 0)
            workers.add_metric([*labels, "starting"], route.unavailable_workers if route else 0)
            wanted = self._source.desired_workers(app_name)
            if wanted is not None:
                desired.add_metric(labels, wanted)
            if settings.endpoint_type is EndpointType.ASYNC:
                depth = self._source.queue.depth(endpoint.endpoint_id)
                queued.add_metric(labels, depth.queued if depth else 0)
                oldest.add_metric(labels, self._source.queue.oldest_age_s(endpoint.endpoint_id))
            app_figures = figures.get(app_name)
            if app_figures is None:
                in_flight.add_metric(labels, 0)
                continue
            in_flight.add_metric(labels, app_figures.in_flight)
            for (kind, path, outcome), n in sorted(app_figures.requests.items()):
                requests.add_metric([*labels, kind, path, outcome], n)
            for (kind, path), histogram in sorted(app_figures.durations.items()):
                durations.add_metric([*labels, kind, path], _buckets(histogram), histogram.total)
            for name, family in histograms.items():
                histogram = app_figures.histograms[name]
                if histogram.count:
                    family.add_metric(labels, _buckets(histogram), histogram.total)
            for phase, histogram in app_figures.cold_start.items():
                if histogram.count:
                    cold.add_metric([*labels, phase], _buckets(histogram), histogram.total)
        return [requests, durations, *histograms.values(), cold, in_flight, workers, bounds, desired, queued, oldest]


def start_metrics_port(registry: CollectorRegistry, bind: str) -> tuple[Any, int] | None:
    """Serves `registry` as Prometheus text on http://bind/metrics; (server, port), or None when
    the address cannot be bound (logged: a server that can serve requests keeps serving them)."""
    from prometheus_client import start_http_server

    host, _, port = bind.rpartition(":")
    try:
        server, _thread = start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1", registry=registry)
    except (OSError, ValueError) as exc:
        log.error("metrics are off: cannot serve them on %s: %s (set LAUNCH_METRICS_BIND)", bind, exc)
        return None
    return server, server.server_port
