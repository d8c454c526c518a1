"""How deep each async endpoint's queue is, for the metrics port and the live endpoint figures.

The database is the queue, so its depth is a database read: one grouped count of pending tasks
(with the oldest one's queue time) over every async endpoint this server serves, every POLL_S,
never at scrape time, so a scrape costs no database round trip and a slow database never stalls
one. Every server sharing the database reads the same figures; each serves them for the
endpoints it knows."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from launch_server.domain.endpoints import EndpointType
from launch_server.domain.live_endpoints import LiveEndpoints
from launch_server.domain.task_queue_ports import QueueDepth, QueueDepths

log = logging.getLogger(__name__)

POLL_S = 2.0


class QueueFigures:
    """The last read of every async endpoint's queue depth."""

    def __init__(self, repo: QueueDepths, live: LiveEndpoints, poll_s: float = POLL_S) -> None:
        self._repo = repo
        self._live = live
        self._poll_s = poll_s
        self._depths: dict[str, QueueDepth] = {}

    def depth(self, endpoint_id: str) -> QueueDepth | None:
        """None when nothing is queued (or the endpoint is not async)."""
        return self._depths.get(endpoint_id)

    def oldest_age_s(self, endpoint_id: str, now: datetime | None = None) -> float:
        """Seconds the oldest queued task has waited; 0 when none waits."""
        depth = self._depths.get(endpoint_id)
        if depth is None:
            return 0.0
        return max(0.0, ((now or datetime.now(UTC)) - depth.oldest_created_at).total_seconds())

    def read_once(self) -> None:
        """One blocking read (in a worker thread)."""
        async_ids = [
            e.endpoint_id for e in self._live.endpoints() if e.settings.endpoint_type is EndpointType.ASYNC
        ]
        self._depths = self._repo.queue_depths(async_ids) if async_ids else {}

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.read_once)
            except Exception:  # noqa: BLE001 - a database outage leaves the last figures; the next pass reads again
                log.warning("reading queue depths failed", exc_info=True)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._poll_s)
            except TimeoutError:
                pass
