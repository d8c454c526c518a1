"""The replica's count of requests in flight on its own port, which Serve cannot see (they never
pass its router): the listener and the task channel both count into it, and the deployment
reports it to Serve's autoscaler (autoscaling.direct_aware_policy)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class InflightGauge:
    """Requests in flight, as a time-weighted average between two reads. An instantaneous
    sample misses short requests (a trivial echo is in flight for microseconds even when the
    replica is saturated); the average over the interval is what Little's law calls the load."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.current = 0
        self._area = 0.0
        self._since = self._last = clock()

    def change(self, delta: int) -> None:
        with self._lock:
            now = self._clock()
            self._area += self.current * (now - self._last)
            self._last = now
            self.current += delta

    def read_average(self) -> float:
        """The average since the previous read (then starts a new interval)."""
        with self._lock:
            now = self._clock()
            self._area += self.current * (now - self._last)
            elapsed = now - self._since
            average = self._area / elapsed if elapsed > 0 else float(self.current)
            self._area, self._since, self._last = 0.0, now, now
            return average
