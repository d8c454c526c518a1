"""The queue's housekeeping, every MAINTAIN_S: leases of servers that died, tasks past their
expiry, finished tasks past their retention (with their stored results), storage no row owns,
and SQLite's write-ahead log. Each step has its own try, so one that fails leaves the others
running."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from launch_server.domain.ports import ObjectStorage

log = logging.getLogger(__name__)

MAINTAIN_S = 2.0
PURGE_EVERY_S = 60.0


class MaintainedQueue(Protocol):
    def reclaim_expired_leases(self, max_attempts: int) -> int: ...
    def expire_pending(self) -> int: ...
    def purge_finished(self, older_than: datetime) -> list[str]: ...
    def checkpoint(self) -> int: ...


class Sweeper(Protocol):
    def sweep(self, now: datetime) -> object: ...


class QueueMaintenance:
    def __init__(
        self,
        queue: MaintainedQueue,
        storage: ObjectStorage,
        sweeper: Sweeper,
        *,
        wake_dispatcher: Callable[[], None],
        max_attempts: int,
        result_retention_s: float,
        sweep_interval_s: float,
    ) -> None:
        self._queue = queue
        self._storage = storage
        self._sweeper = sweeper
        self._wake_dispatcher = wake_dispatcher
        self._max_attempts = max_attempts
        self._result_retention_s = result_retention_s
        self._sweep_interval_s = sweep_interval_s

    async def run(self, stop: asyncio.Event) -> None:
        last_purge = last_sweep = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=MAINTAIN_S)
            except TimeoutError:
                pass
            try:
                if await asyncio.to_thread(self._queue.reclaim_expired_leases, self._max_attempts):
                    self._wake_dispatcher()
                await asyncio.to_thread(self._queue.expire_pending)
                if loop.time() - last_purge > PURGE_EVERY_S:
                    last_purge = loop.time()
                    await self._purge_finished()
            except Exception:  # noqa: BLE001
                log.exception("queue maintenance failed")
            try:  # storage no row owns (storage/sweeper.py): bounded passes
                if loop.time() - last_sweep > self._sweep_interval_s:
                    last_sweep = loop.time()
                    await asyncio.to_thread(self._sweeper.sweep, datetime.now(UTC))
            except Exception:  # noqa: BLE001
                log.exception("storage sweep failed")
            try:  # its own try: a failed pass above must not let SQLite's write-ahead log grow
                await asyncio.to_thread(self._queue.checkpoint)
            except Exception:  # noqa: BLE001
                log.exception("database checkpoint failed")

    async def _purge_finished(self) -> None:
        cutoff = datetime.now(UTC) - timedelta(seconds=self._result_retention_s)
        for url in await asyncio.to_thread(self._queue.purge_finished, cutoff):
            if self._storage.contains(url):
                await asyncio.to_thread(self._storage.delete, url)
