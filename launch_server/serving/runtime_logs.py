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
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

from launch_server.domain.errors import EndpointUnavailable, ResourceExhausted
from launch_server.observability.log_chunks import LOGS_NAMESPACE, RETAIN_S, ChunkError, LogLine, parse_chunk, parse_key
from launch_server.serving.gcs_kv import multi_get
from launch_server.serving.ray_gate import RayUnavailable, gate

log = logging.getLogger(__name__)

FOLLOW_S = 0.5
SWEEP_S = 60.0
MAX_FOLLOWERS = 64
MAX_READERS = 16  # one-shot reads at once
MAX_READ_BYTES = 16 << 20  # of chunks per pass; past it the read says so and stops
READ_BATCH = 64  # chunks fetched per GCS call (64 x 256 KiB at the most)
MAX_MESSAGE_LINES = 1000
MAX_MESSAGE_BYTES = 1 << 20
GCS_THREADS = 4  # the reads' own threads, so followers never hold the server's shared pool


def _list(prefix: bytes) -> list[bytes]:
    from ray.experimental.internal_kv import _internal_kv_list

    with gate.held():
        return list(_internal_kv_list(prefix, namespace=LOGS_NAMESPACE))


def _note(replica: str, text: str) -> LogLine:
    return LogLine(time.time(), replica, "stderr", f"[launch: {text}]")


class _Read:
    """One pass over new chunks: their lines, oldest first, and where each replica's chunks
    got to (a gap means a follower fell behind a replica that deleted its old chunks)."""

    def __init__(self, last_sequence: dict[str, int]) -> None:
        self.last_sequence = last_sequence
        self.lines: list[LogLine] = []
        self.read: list[bytes] = []

    def run(self, keys: list[bytes]) -> None:
        size = 0
        for start in range(0, len(keys), READ_BATCH):
            batch = keys[start : start + READ_BATCH]
            with gate.held():
                values = multi_get(batch, LOGS_NAMESPACE)
            if not self._take(batch, values, size):
                break
            size += sum(len(v) for v in values.values())
        self.lines.sort(key=lambda line: line.time)

    def _take(self, keys: list[bytes], values: dict[bytes, bytes], size: int) -> bool:
        """Adds one batch's lines; False once the read is over MAX_READ_BYTES (it says so)."""
        for key in keys:
            parsed = parse_key(key)
            if parsed is None:
                continue
            _, replica, sequence = parsed
            if size > MAX_READ_BYTES:
                self.lines.append(_note(replica, "more lines than one read carries: ask again with since_seconds"))
                return False
            value = values.get(key)
            self.read.append(key)
            if not value:
                continue
            size += len(value)
            last = self.last_sequence.get(replica)
            if last is not None and sequence > last + 1:
                self.lines.append(
                    _note(replica, f"{sequence - last - 1} chunks of lines were gone before they were read")
                )
            self.last_sequence[replica] = max(sequence, last or 0)
            try:
                self.lines.extend(parse_chunk(value, replica)[1])
            except ChunkError:
                continue
        return True


def _in_messages(lines: list[LogLine]) -> list[list[LogLine]]:
    """At most MAX_MESSAGE_LINES lines and about MAX_MESSAGE_BYTES of text per message."""
    messages: list[list[LogLine]] = [[]]
    size = 0
    for line in lines:
        if messages[-1] and (len(messages[-1]) >= MAX_MESSAGE_LINES or size + len(line.text) > MAX_MESSAGE_BYTES):
            messages.append([])
            size = 0
        messages[-1].append(line)
        size += len(line.text) * 4 + 64  # UTF-8 at the most, with the line's other fields
    return [m for m in messages if m]


class RuntimeLogs:
    def __init__(self, app_prefix: str, max_followers: int = MAX_FOLLOWERS, follow_s: float = FOLLOW_S) -> None:
        self._prefix = f"{app_prefix}-"
        self._follow_s = follow_s
        self._max_followers = max(1, min(1024, max_followers))  # LAUNCH_LOG_FOLLOWERS_MAX's bounds
        self._followers = 0
        self._readers = 0
        self._pool = ThreadPoolExecutor(max_workers=GCS_THREADS, thread_name_prefix="launch-logs")

    async def _in_pool(self, fn: Callable[..., object], *args: object) -> object:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def lines(
        self, app_name: str, since: float, follow: bool, still_served: Callable[[], bool] = lambda: True
    ) -> AsyncIterator[list[LogLine]]:
        """Messages of lines newer than `since` (Unix seconds; 0 for all kept), then, when
        `follow`, the new ones until the caller stops reading or `still_served` says the
        endpoint is gone. EndpointUnavailable when Ray is not connected (a follower waits for it
        instead); ResourceExhausted when too many read or follow already."""
        if follow and self._followers >= self._max_followers:
            raise ResourceExhausted(f"{self._max_followers} clients follow logs on this server already; try later")
        if not follow and self._readers >= MAX_READERS:
            raise ResourceExhausted(f"{MAX_READERS} runtime-log reads run on this server already; try again")
        prefix = f"{app_name}/".encode()
        if follow:
            self._followers += 1
        else:
            self._readers += 1
        try:
            sent: set[bytes] = set()
            last_sequence: dict[str, int] = {}
            while True:
                read = _Read(last_sequence)
                try:
                    keys = await self._in_pool(_list, prefix)
                    await self._in_pool(read.run, sorted(key for key in keys if key not in sent))  # type: ignore[union-attr]
                    sent = (sent & set(keys)) | set(read.read)  # chunks the replica deleted are forgotten
                except RayUnavailable as exc:
                    if not follow:
                        raise EndpointUnavailable(f"runtime logs cannot be read now: {exc}") from None
                for message in _in_messages([line for line in read.lines if line.time >= since]):
                    yield message
                if not follow or not still_served():
                    return
                await asyncio.sleep(self._follow_s)
        finally:
            if follow:
                self._followers -= 1
            else:
                self._readers -= 1

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
        try:
            await self._sweep_until(stop)
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)

    async def _sweep_until(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=SWEEP_S)
                return
            except TimeoutError:
                pass
            try:
                await self._in_pool(self.sweep_once)
            except RayUnavailable:
                pass
            except Exception:  # noqa: BLE001 - the next pass sweeps again
                log.warning("sweeping old runtime log chunks failed", exc_info=True)


def drop_application(app_name: str) -> None:
    """Forgets every chunk of a deleted endpoint (a blocking GCS call)."""
    from ray.experimental.internal_kv import _internal_kv_del

    _internal_kv_del(f"{app_name}/".encode(), del_by_prefix=True, namespace=LOGS_NAMESPACE)
