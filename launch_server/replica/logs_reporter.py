"""Carries a replica's captured lines (log_capture.py) to the servers: every PUBLISH_S, the lines
since the last publish become one chunk in the GCS (observability/log_chunks.py), and the chunk
KEEP_CHUNKS before it is deleted. The GCS and not a port of the replica's own, for the reasons
figures_reporter.py gives: every replica on any node reaches it, batch endpoints have no port, and
the lines outlive the replica for a while, which is when a crash's last words are wanted most."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from launch_server.observability.log_chunks import KEEP_CHUNKS, LOGS_NAMESPACE, chunk_key, encode_chunk
from launch_server.replica.log_capture import CAPTURE, LogCapture
from launch_server.replica.publishing import publish_until_stopped

PUBLISH_S = 0.5
# A replica with nothing new to say writes an empty chunk this often, so the servers' sweep (which
# forgets replicas whose newest chunk is older than log_chunks.RETAIN_S) never takes a quiet but
# live replica for a gone one.
KEEPALIVE_S = 600.0

logger = logging.getLogger("ray.serve")


class LogsReporter:
    """One replica's publisher; `publish_once` blocks (a GCS call: off the event loop)."""

    def __init__(self, app_name: str, replica_id: str, capture: LogCapture = CAPTURE) -> None:
        self._app = app_name
        self._replica = replica_id
        self._capture = capture
        self._sequence = 0
        self._kept: deque[bytes] = deque()
        self._last_write = 0.0

    def publish_once(self) -> None:
        from ray.experimental.internal_kv import _internal_kv_del, _internal_kv_put

        lines, dropped = self._capture.take()
        now = time.time()
        if not lines and not dropped and now - self._last_write < KEEPALIVE_S:
            return
        self._sequence += 1
        key = chunk_key(self._app, self._replica, self._sequence)
        _internal_kv_put(key, encode_chunk(lines, dropped, now), overwrite=True, namespace=LOGS_NAMESPACE)
        self._last_write = now
        self._kept.append(key)
        while len(self._kept) > KEEP_CHUNKS:
            _internal_kv_del(self._kept.popleft(), namespace=LOGS_NAMESPACE)

    def flush(self) -> None:
        """One last publish (the replica is stopping, or failed to load); never raises."""
        try:
            self.publish_once()
        except Exception:  # noqa: BLE001 - the lines are still in Ray's worker log
            logger.warning("Launch replica: writing its last log lines to the GCS failed", exc_info=True)

    async def run_until_stopped(self, stop: asyncio.Event) -> None:
        """Publishes every PUBLISH_S until `stop` is set, then once more. A failed write loses
        that chunk's lines here only (they are in Ray's worker log too)."""
        await publish_until_stopped(self.publish_once, PUBLISH_S, stop, "log lines")
