"""A small bounded map whose entries expire, for the API-key checks: what a key id names (or that
it names nothing) is remembered for a while, so repeated calls, and repeated bad keys, cost no
database query. Bounded by entry count (oldest written evicted first), so a flood of distinct
keys costs fixed memory. Thread-safe: the checks run on the interceptor's threads."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")
MISSING = object()  # get()'s answer for "not remembered", distinct from a remembered None


class ExpiringMap(Generic[V]):
    def __init__(self, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def get(self, key: str) -> V | object:
        """The value remembered for key, or MISSING when there is none or it expired."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return MISSING
            if entry[0] <= self._clock():
                del self._entries[key]
                return MISSING
            return entry[1]

    def put(self, key: str, value: V, ttl_s: float) -> None:
        if ttl_s <= 0 or self._max <= 0:
            return
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = (self._clock() + ttl_s, value)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def discard(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def discard_where(self, predicate: Callable[[str], bool]) -> None:
        with self._lock:
            for key in [k for k in self._entries if predicate(k)]:
                del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
