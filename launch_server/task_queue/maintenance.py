"""Queue upkeep every server does, cheap enough to run every 2 s: takes over the leases of dead
servers, expires tasks past their expiry, purges old results and their stored objects, sweeps
storage no row owns (storage/sweeper.py) and checkpoints SQLite's write-ahead log. Each step has
its own try, so one failing (a database outage, say) never stops the others."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from launch_server.domain.ports import ObjectStorage
from launch_server.storage.sweeper import StorageSweeper
from launch_server.store.task_repository import SqlTaskRepository

log = logging.getLogger(__name__)


class QueueMaintenance:
    def __init__(
        self,
        repo: SqlTaskRepository,
        storage: ObjectStorage,
        sweeper: StorageSweeper,
        *,
        max_attempts: int,
        wake_dispatcher: Callable[[], None],
        result_retention_s: float,
        sweep_interval_s: float,
    ) -> None:
        self._repo = repo
        self._storage = storage
        self._sweeper = sweeper
        self._max_attempts = max_attempts
        self._wake_dispatcher = wake_dispatcher
        self._result_retention_s = result_retention_s
        self._sweep_interval_s = sweep_interval_s

    async def run(self, stop: asyncio.Event) -> None:
        last_purge = last_sweep = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=2.0)
            except TimeoutError:
                pass
            try:
                if await asyncio.to_thread(self._repo.reclaim_expired_leases, self._max_attempts):
                    self._wake_dispatcher()
                await asyncio.to_thread(self._repo.expire_pending)
                if loop.time() - last_purge > 60:
                    last_purge = loop.time()
                    cutoff = datetime.now(UTC) - timedelta(seconds=self._result_retention_s)
                    for url in await asyncio.to_thread(self._repo.purge_finished, cutoff):
                        if self._storage.contains(url):
                            await asyncio.to_thread(self._storage.delete, url)
            except Exception:  # noqa: BLE001
                log.exception("queue maintenance failed")
            try:
                if loop.time() - last_sweep > self._sweep_interval_s:
                    last_sweep = loop.time()
                    await asyncio.to_thread(self._sweeper.sweep, datetime.now(UTC))
            except Exception:  # noqa: BLE001
                log.exception("storage sweep failed")
            try:  # its own try: a failed pass above must not let SQLite's write-ahead log grow
                await asyncio.to_thread(self._repo.checkpoint)
            except Exception:  # noqa: BLE001
                log.exception("database checkpoint failed")
