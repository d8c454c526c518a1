"""The servers' side of replica figures (replica/figures_reporter.py): every POLL_S, one read of
the GCS namespace the replicas write, summed per Serve application.

Counters must never go down while the server runs, though replicas come and go: a replica's last
snapshot stays counted after it stopped (its entry is deleted, or it stopped writing), folded into
the application's retired total, so a scale-down does not look like a counter reset. A replica
missing from one read but back in a later one (its loop was busy, a write failed) is not counted
twice: it stays apart, as recently retired, for TOMBSTONE_S before it is folded in. A replica that
stopped writing counts in the in-flight gauge no longer once its snapshot is STALE_S old. Ages are
judged on this server's clock (when a snapshot last changed), never by a replica's own, so clock
skew between nodes cannot hide a live replica. A snapshot of the wrong shape is skipped whole
(observability/figures.parse_snapshot).

Trust: replicas run user code with the same GCS access Ray gives every worker, so any of them can
write anything into this namespace; the bounds below (size, closed label sets, applications the
server serves) keep that from costing more than wrong figures for an endpoint."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from launch_server.observability.figures import ReplicaFigures, SnapshotError, merged, parse_snapshot
from launch_server.observability.live_stats import StatsHistory, Totals
from launch_server.replica.autoscaling import DESIRED_NAMESPACE, DESIRED_REFRESH_S, parse_desired
from launch_server.replica.figures_reporter import FIGURES_NAMESPACE, PUBLISH_S
from launch_server.serving.gcs_kv import multi_get
from launch_server.serving.ray_gate import RayUnavailable, gate

log = logging.getLogger(__name__)

POLL_S = PUBLISH_S
STALE_S = 5 * PUBLISH_S  # no new snapshot for this long: the replica's requests are no longer in flight
FORGET_S = 60.0  # ... and after this long its entry is deleted (it crashed without a last write)
TOMBSTONE_S = 600.0  # a retired replica stays apart this long, in case it writes again
MAX_SNAPSHOT_BYTES = 64 << 10  # a snapshot is a few kB; anything far larger is not one
DESIRED_STALE_S = 3 * DESIRED_REFRESH_S  # the autoscaler rewrites its figure at least this often


@dataclass
class _Seen:
    """A replica's last snapshot, and when (on this server's monotonic clock) it last changed."""

    written: float
    changed_at: float
    figures: ReplicaFigures


@dataclass
class _AppFigures:
    live: dict[str, _Seen] = field(default_factory=dict)  # replica id -> its last snapshot
    # replica id -> (when it retired, its last figures)
    recently_retired: dict[str, tuple[float, ReplicaFigures]] = field(default_factory=dict)
    retired: ReplicaFigures = field(default_factory=ReplicaFigures)


class ReplicaFiguresReader:
    """Holds the latest figures of this server's applications: those `served_apps` names (all
    named `<prefix>-...` when it is None, as in unit tests)."""

    def __init__(
        self, app_prefix: str, poll_s: float = POLL_S, served_apps: Callable[[], set[str]] | None = None
    ) -> None:
        self._prefix = f"{app_prefix}-"
        self._poll_s = poll_s
        self._served_apps = served_apps
        self._lock = threading.Lock()  # absorb (a worker thread) against by_app (the scrape's thread)
        self._apps: dict[str, _AppFigures] = {}
        self._desired: dict[str, int] = {}
        self.history = StatsHistory()  # recent totals per application, for live figures

    def absorb(self, entries: dict[bytes, bytes | None], now: float) -> list[bytes]:
        """Takes one read of the namespace (key -> snapshot) at `now` (time.monotonic() unless a
        test says otherwise); returns the keys to delete."""
        served = self._served_apps() if self._served_apps is not None else None
        with self._lock:
            previous = {app: held.live for app, held in self._apps.items()}
        seen: dict[str, dict[str, _Seen]] = {}
        forget: list[bytes] = []
        for key, value in entries.items():
            app, _, replica = key.decode(errors="replace").rpartition("/")
            if not app.startswith(self._prefix) or (served is not None and app not in served):
                continue
            if not value or len(value) > MAX_SNAPSHOT_BYTES:
                continue
            try:
                written, figures = parse_snapshot(json.loads(value))
            except (SnapshotError, ValueError):
                continue
            before = previous.get(app, {}).get(replica)
            changed_at = now if before is None or before.written != written else before.changed_at
            if now - changed_at > FORGET_S:
                forget.append(key)
                continue
            seen.setdefault(app, {})[replica] = _Seen(written, changed_at, figures)
        with self._lock:
            apps = set(self._apps) | set(seen)
            if served is not None:
                apps &= served | set(seen)  # a deleted endpoint's figures go with it
            self._apps = {app: self._updated(self._apps.get(app), seen.get(app, {}), now) for app in apps}
        return forget

    @staticmethod
    def _updated(held: _AppFigures | None, current: dict[str, _Seen], now: float) -> _AppFigures:
        """The application's figures after one read: replicas gone from it retire, those back
        in it leave the recently retired, and those retired long enough fold into the total."""
        held = held or _AppFigures()
        recently = dict(held.recently_retired)
        for replica, last in held.live.items():
            if replica not in current:
                recently[replica] = (now, last.figures)
        for replica in current:
            recently.pop(replica, None)  # it wrote again: its new snapshot counts everything
        old = [figures for retired_at, figures in recently.values() if now - retired_at > TOMBSTONE_S]
        retired = merged([held.retired, *old]) if old else held.retired
        retired.in_flight = 0
        recently = {r: v for r, v in recently.items() if now - v[0] <= TOMBSTONE_S}
        return _AppFigures(live=dict(current), recently_retired=recently, retired=retired)

    def absorb_desired(self, entries: dict[bytes, bytes | None], now: float) -> None:
        """Takes one read of the autoscaler's desired-workers figures (replica/autoscaling.py)."""
        desired = {}
        for key, value in entries.items():
            workers = parse_desired(value, now, DESIRED_STALE_S)
            if workers is not None:
                desired[key.decode(errors="replace")] = workers
        self._desired = desired

    def desired_workers(self, app_name: str) -> int | None:
        """What the autoscaler last asked for, or None when it has said nothing lately."""
        return self._desired.get(app_name)

    def read_once(self) -> None:
        """One blocking read of the GCS (in a worker thread)."""
        from ray.experimental.internal_kv import _internal_kv_del, _internal_kv_list

        with gate.held():
            keys = _internal_kv_list(self._prefix.encode(), namespace=FIGURES_NAMESPACE)
            entries: dict[bytes, bytes | None] = dict(multi_get(list(keys), FIGURES_NAMESPACE))
            desired_keys = _internal_kv_list(self._prefix.encode(), namespace=DESIRED_NAMESPACE)
            desired: dict[bytes, bytes | None] = dict(multi_get(list(desired_keys), DESIRED_NAMESPACE))
        self.absorb_desired(desired, time.time())
        now = time.monotonic()
        forget = self.absorb(entries, now)
        self.record_history(now)
        with gate.held():
            for key in forget:
                _internal_kv_del(key, namespace=FIGURES_NAMESPACE)

    def record_history(self, now: float) -> None:
        """Adds every application's totals as of `now` to the live-figures history."""
        apps = self.by_app(now)
        for app, figures in apps.items():
            self.history.record(app, Totals.of(now, figures))
        self.history.keep_only(set(apps))

    def by_app(self, now: float | None = None) -> dict[str, ReplicaFigures]:
        """Every application's figures: its live replicas', its recently retired and its retired
        ones together (safe from any thread)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            apps = dict(self._apps)
        result = {}
        for app, held in apps.items():
            parts = []
            for seen in held.live.values():
                figures = seen.figures
                if now - seen.changed_at > STALE_S:
                    figures = merged([figures])
                    figures.in_flight = 0
                parts.append(figures)
            for _, figures in held.recently_retired.values():
                quiet = merged([figures])
                quiet.in_flight = 0
                parts.append(quiet)
            result[app] = merged([held.retired, *parts])
        return result

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.read_once)
            except RayUnavailable:
                pass  # the cluster is lost or being joined: figures stay as last read
            except Exception:  # noqa: BLE001 - the next pass reads again
                log.warning("reading replica figures from the GCS failed", exc_info=True)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._poll_s)
            except TimeoutError:
                pass
