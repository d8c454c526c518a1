"""The one door every Ray call of the server passes through, so that none runs while the cluster
is lost or being replaced.

Why: Ray and Serve connect on their own when they find no connection (Serve's `_connect` calls
`ray.init()`, which takes RAY_ADDRESS, the dead cluster's address). A Ray call that starts after
the server dropped its connection would therefore join the dead cluster again, block its thread
and take Ray's locks that the event loop's Serve handles need. While the gate is closed a call
gets RayUnavailable (a ConnectionError, so it is retried like any lost connection) instead; the
server waits for the calls already inside to come out before it disconnects."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class RayUnavailable(ConnectionError):
    """Ray is not connected now (lost, or being joined); the call was not made."""


class RayGate:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._reason = ""  # empty while open
        self._inside = 0

    @property
    def reason(self) -> str:
        return self._reason

    def check(self) -> None:
        """Raises RayUnavailable while closed (for a quick call on the event loop's thread)."""
        reason = self._reason
        if reason:
            raise RayUnavailable(reason)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Around a (blocking) Ray call: refused while closed, counted while inside."""
        with self._cond:
            if self._reason:
                raise RayUnavailable(self._reason)
            self._inside += 1
        try:
            yield
        except (asyncio.CancelledError, SystemExit) as exc:
            # Raised by Ray in this (worker) thread when the connection goes while a call waits
            # (ray.shutdown); as a BaseException it would end the asyncio loop awaiting the thread.
            raise RayUnavailable(f"a Ray call was cut off: {exc!r}") from exc
        finally:
            with self._cond:
                self._inside -= 1
                self._cond.notify_all()

    def close(self, reason: str) -> None:
        with self._cond:
            self._reason = reason or "Ray is not connected"

    def open(self) -> None:
        with self._cond:
            self._reason = ""

    def wait_idle(self, timeout_s: float) -> bool:
        """Blocks until no call is inside (they fail against a dead cluster); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._inside == 0, timeout=timeout_s)


# The server process has one Ray connection, hence one gate. It starts open so that code run
# without a serving layer (tests against a shared cluster) is not refused.
gate = RayGate()
