"""Carries API-key revocations to the direct route: every `interval_s` the server reads which
keys were revoked lately and writes their ids to the GCS (replica_registry.publish_revoked),
where replicas read them on their heartbeat and refuse those keys' route tokens. A key revoked
through any server, or by `launch-server keys revoke` straight into the database, is seen.

"Lately" is the window a token fetched with the key could still be alive: minted up to the auth
cache period after the revocation, then valid for the token TTL (plus a margin for clocks), so
the list stays small however many keys were ever revoked."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from launch_server.domain.keys import ApiKeyService
from launch_server.replica import registry as replica_registry
from launch_server.serving.ray_gate import RayUnavailable, gate

log = logging.getLogger(__name__)

CLOCK_MARGIN_S = 60.0
REWRITE_S = 10.0  # an unchanged list is written again this often (a restarted GCS forgets it)


class RevocationPublisher:
    def __init__(self, keys: ApiKeyService, prefix: str, window_s: float, interval_s: float) -> None:
        self._keys = keys
        self._prefix = prefix
        self._window_s = window_s + CLOCK_MARGIN_S
        self._interval_s = interval_s
        self._published: set[str] | None = None
        self._written = 0.0

    def publish_once(self) -> set[str]:
        """Reads the lately revoked keys and writes them when they changed (blocking calls)."""
        revoked = self._keys.revoked_since(datetime.now(UTC) - timedelta(seconds=self._window_s))
        if revoked != self._published or time.monotonic() - self._written >= REWRITE_S:
            with gate.held():  # refused while the cluster is lost (ray_gate)
                replica_registry.publish_revoked(self._prefix, revoked)
            self._published, self._written = revoked, time.monotonic()
        return revoked

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.publish_once)
            except RayUnavailable:
                pass  # the cluster is lost or being joined: the first pass after it is back writes
            except Exception:  # noqa: BLE001 - replicas keep the last list; the next pass retries
                log.warning("publishing revoked API keys to the GCS failed", exc_info=True)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._interval_s)
            except TimeoutError:
                pass
