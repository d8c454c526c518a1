"""The loop a replica's reporters share (figures_reporter.py, logs_reporter.py): a blocking GCS
write every interval, off the event loop, until told to stop, and once more then, so what the
replica counted or printed last still goes out. A failed write is logged and tried again next
time: what it carried is late (figures) or only in Ray's worker log (log lines), never fatal."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

logger = logging.getLogger("ray.serve")


async def publish_until_stopped(publish: Callable[[], None], interval_s: float, stop: asyncio.Event, what: str) -> None:
    loop = asyncio.get_running_loop()
    while True:
        stopping = stop.is_set()
        try:
            await loop.run_in_executor(None, publish)
        except Exception:  # noqa: BLE001 - see module doc
            logger.warning("Launch replica: writing its %s to the GCS failed", what, exc_info=True)
        if stopping:
            return
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
        except TimeoutError:
            pass
