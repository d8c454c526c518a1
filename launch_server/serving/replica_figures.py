"""The servers' side of replica figures (replica/figures_reporter.py): every POLL_S, one read of
the GCS namespace the replicas write, summed per Serve application.

Counters must never go down while the server runs, though replicas come and go: a replica's last
snapshot stays counted after it stopped (its entry is deleted, or it stopped writing), folded into
the application's retired total, so a scale-down does not look like a counter reset. A replica
that stopped writing counts in the in-flight gauge no longer once its snapshot is STALE_S old. A
snapshot of the wrong shape is skipped whole (observability/figures.parse_snapshot)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field

from launch_server.observability.figures import ReplicaFigures, SnapshotError, merged, parse_snapshot
from launch_server.replica.figures_reporter import FIGURES_NAMESPACE, PUBLISH_S
from launch_server.serving.ray_gate import RayUnavailable, gate

log = logging.getLogger(__name__)

POLL_S = PUBLISH_S
STALE_S = 5 * PUBLISH_S  # no write for this long: the replica's requests are no longer in flight
FORGET_S = 60.0  # ... and after this long its entry is deleted (it crashed without a last write)
MAX_SNAPSHOT_BYTES = 256 << 10  # a snapshot is a few kB; anything far larger is not one


@dataclass
class _AppFigures:
    live: dict[str, tuple[float, ReplicaFigures]] = field(default_factory=dict)  # replica id -> (written, figures)
    retired: ReplicaFigures = field(default_factory=ReplicaFigures)


class ReplicaFiguresReader:
    """Holds the latest figures of this server's applications (those named `<prefix>-...`)."""

    def __init__(self, app_prefix: str, poll_s: float = POLL_S) -> None:
        self._prefix = f"{app_prefix}-"
        self._poll_s = poll_s
        self._apps: dict[str, _AppFigures] = {}

    def absorb(self, entries: dict[bytes, bytes | None], now: float) -> list[bytes]:
        """Takes one read of the namespace (key -> snapshot); returns the keys to delete."""
        seen: dict[str, dict[str, tuple[float, ReplicaFigures]]] = {}
        forget: list[bytes] = []
        for key, value in entries.items():
            app, _, replica = key.decode(errors="replace").rpartition("/")
            if not app.startswith(self._prefix) or not value or len(value) > MAX_SNAPSHOT_BYTES:
                continue
            try:
                written, figures = parse_snapshot(json.loads(value))
            except (SnapshotError, ValueError):
                continue
            if now - written > FORGET_S:
                forget.append(key)
                continue
            seen.setdefault(app, {})[replica] = (written, figures)
        for app in set(self._apps) | set(seen):
            held = self._apps.setdefault(app, _AppFigures())
            current = seen.get(app, {})
            gone = [held.live[r][1] for r in held.live if r not in current]
            if gone:
                held.retired = merged([held.retired, *gone])
                held.retired.in_flight = 0
            held.live = current
        return forget

    def read_once(self) -> None:
        """One blocking read of the GCS (in a worker thread)."""
        from ray.experimental.internal_kv import _internal_kv_del, _internal_kv_get, _internal_kv_list

        with gate.held():
            keys = _internal_kv_list(self._prefix.encode(), namespace=FIGURES_NAMESPACE)
            entries = {key: _internal_kv_get(key, namespace=FIGURES_NAMESPACE) for key in keys}
        forget = self.absorb(entries, time.time())
        with gate.held():
            for key in forget:
                _internal_kv_del(key, namespace=FIGURES_NAMESPACE)

    def by_app(self, now: float | None = None) -> dict[str, ReplicaFigures]:
        """Every application's figures: its live replicas' and its retired ones' together."""
        now = time.time() if now is None else now
        result = {}
        for app, held in self._apps.items():
            parts = []
            for written, figures in held.live.values():
                if now - written > STALE_S:
                    figures = merged([figures])
                    figures.in_flight = 0
                parts.append(figures)
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
