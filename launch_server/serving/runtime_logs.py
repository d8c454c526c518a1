"""The servers' side of runtime logs (replica/logs_reporter.py): an endpoint's lines, read from
the chunks its replicas keep in the GCS (observability/log_chunks.py), oldest first, and, when a
client follows, the new chunks as they land (one listing of the endpoint's keys every FOLLOW_S,
reading only the chunks not sent yet).

An endpoint is resolved by owner and name before anything is read (api/endpoints.py), and its
chunks live under its own Serve application's name, so one owner never reads another's lines.
Followers are bounded per server (MAX_FOLLOWERS), since each costs a GCS listing per FOLLOW_S.
This also forgets what outlived its replicas: every SWEEP_S, the chunks of replicas whose newest
chunk is older than RETAIN_S are deleted (a deleted endpoint's go with it, in the reconciler)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from launch_server.domain.errors import EndpointUnavailable, ResourceExhausted
from launch_server.observability.log_chunks import LOGS_NAMESPACE, RETAIN_S, ChunkError, LogLine, parse_chunk, parse_key
from launch_server.serving.ray_gate import RayUnavailable, gate

log = logging.getLogger(__name__)

FOLLOW_S = 0.5
SWEEP_S = 60.0
MAX_FOLLOWERS = 64
MAX_LINES_PER_MESSAGE = 1000


def _list(prefix: bytes) -> list[bytes]:
    from ray.experimental.internal_kv import _internal_kv_list

    with gate.held():
        return list(_internal_kv_list(prefix, namespace=LOGS_NAMESPACE))


def _read(keys: list[bytes]) -> list[LogLine]:
    """The lines of these chunks, oldest first; malformed chunks are skipped."""
    from ray.experimental.internal_kv import _internal_kv_get

    lines: list[LogLine] = []
    for key in keys:
        parsed = parse_key(key)
        with gate.held():
            value = _internal_kv_get(key, namespace=LOGS_NAMESPACE)
        if parsed is None or not value:
            continue
        try:
            lines.extend(parse_chunk(value, parsed[1])[1])
        except ChunkError:
            continue
    lines.sort(key=lambda line: line.time)
    return lines


def _in_messages(lines: list[LogLine]) -> list[list[LogLine]]:
    return [lines[i : i + MAX_LINES_PER_MESSAGE] for i in range(0, len(lines), MAX_LINES_PER_MESSAGE)]


class RuntimeLogs:
    def __init__(self, app_prefix: str, follow_s: float = FOLLOW_S) -> None:
        self._prefix = f"{app_prefix}-"
        self._follow_s = follow_s
        self._followers = 0

    async def lines(self, app_name: str, since: float, follow: bool) -> AsyncIterator[list[LogLine]]:
        """Messages of lines newer than `since` (Unix seconds; 0 for all kept), then, when
        `follow`, the new ones until the caller stops reading. EndpointUnavailable while Ray is
        not connected; ResourceExhausted when too many follow already."""
        if follow and self._followers >= MAX_FOLLOWERS:
            raise ResourceExhausted(f"{MAX_FOLLOWERS} clients follow logs on this server already; try again later")
        prefix = f"{app_name}/".encode()
        self._followers += follow
        try:
            sent: set[bytes] = set()
            while True:
                try:
                    keys = await asyncio.to_thread(_list, prefix)
                    fresh = sorted(key for key in keys if key not in sent)
                    lines = await asyncio.to_thread(_read, fresh)
                except RayUnavailable as exc:
                    if not follow or not sent:
                        raise EndpointUnavailable(f"runtime logs cannot be read now: {exc}") from None
                    lines, keys, fresh = [], list(sent), []  # wait for Ray to come back
                sent = (sent & set(keys)) | set(fresh)  # chunks the replica deleted are forgotten
                for message in _in_messages([line for line in lines if line.time >= since]):
                    yield message
                if not follow:
                    return
                await asyncio.sleep(self._follow_s)
        finally:
            self._followers -= follow

    def sweep_once(self, now: float | None = None) -> int:
        """Deletes the chunks of replicas quiet for RETAIN_S (a blocking pass over the GCS, in a
        worker thread); returns how many."""
        from ray.experimental.internal_kv import _internal_kv_del, _internal_kv_get

        now = time.time() if now is None else now
        by_replica: dict[tuple[str, str], list[tuple[int, bytes]]] = {}
        for key in _list(self._prefix.encode()):
            parsed = parse_key(key)
            if parsed is not None:
                by_replica.setdefault((parsed[0], parsed[1]), []).append((parsed[2], key))
        deleted = 0
        for (_, replica), chunks in by_replica.items():
            chunks.sort()
            with gate.held():
                newest = _internal_kv_get(chunks[-1][1], namespace=LOGS_NAMESPACE)
            try:
                written = parse_chunk(newest, replica)[0] if newest else 0.0
            except ChunkError:
                written = 0.0
            if now - written > RETAIN_S:
                with gate.held():
                    for _, key in chunks:
                        _internal_kv_del(key, namespace=LOGS_NAMESPACE)
                deleted += len(chunks)
        return deleted

    async def run(self, stop: asyncio.Event) -> None:
        """The sweep, every SWEEP_S, until the server stops."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=SWEEP_S)
                return
            except TimeoutError:
                pass
            try:
                await asyncio.to_thread(self.sweep_once)
            except RayUnavailable:
                pass
            except Exception:  # noqa: BLE001 - the next pass sweeps again
                log.warning("sweeping old runtime log chunks failed", exc_info=True)


def drop_application(app_name: str) -> None:
    """Forgets every chunk of a deleted endpoint (a blocking GCS call)."""
    from ray.experimental.internal_kv import _internal_kv_del

    _internal_kv_del(f"{app_name}/".encode(), del_by_prefix=True, namespace=LOGS_NAMESPACE)
