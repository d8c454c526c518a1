"""Local-directory storage. Writes go to a temporary file beside the final path and are renamed
into place on commit, so a reader never sees a partial object."""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from launch_server.domain.locations import Location, LocationError, parse_location
from launch_server.domain.ports import StoredObject
from launch_server.storage.space import full_is_exhausted


def path_of(location: str) -> Path:
    """The file a `file://` location names, decoded and normalized once (domain/locations.py)."""
    parsed = parse_location(location)
    if parsed.scheme != "file":
        raise LocationError(f"not a file:// location: {location!r}")
    return Path(parsed.path)


class LocalWriter:
    def __init__(self, final_path: Path) -> None:
        self._final = final_path
        self._final.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = final_path.with_name(f".{final_path.name}.{uuid.uuid4().hex}.part")
        with full_is_exhausted(final_path.name):
            self._file = open(self._tmp, "wb")  # noqa: SIM115 - closed in commit/abort
        self._committed = False
        self._lock = threading.Lock()  # write/commit/abort, as in S3Writer

    def write(self, data: bytes) -> None:
        with self._lock, full_is_exhausted(self._final.name):
            self._file.write(data)

    def commit(self) -> str:
        with self._lock, full_is_exhausted(self._final.name):
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._tmp, self._final)
            self._committed = True
            return self._final.as_uri()

    def abort(self) -> None:
        """Waits for a write or commit still in flight (a cancelled upload's thread runs on), then
        discards the temporary file, or the committed file when a commit got through."""
        with self._lock:
            if not self._file.closed:
                with contextlib.suppress(OSError):  # buffered bytes a full disk cannot take
                    self._file.close()
            self._tmp.unlink(missing_ok=True)
            if self._committed:
                self._final.unlink(missing_ok=True)


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)  # owner-only, like the data directory
        self.root_url = self.root.as_uri()
        self.root_location = Location("file", "", str(self.root))

    def canonical(self, location: str) -> Location:
        """The location in canonical form with symbolic links resolved, so a link inside the
        storage root that points out of it is judged by where it points. S3 locations are
        returned parsed (another adapter reads them); raises LocationError."""
        parsed = parse_location(location)
        if parsed.scheme != "file":
            return parsed
        return Location("file", "", os.path.realpath(parsed.path))

    def _path_for_key(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise LocationError(f"key escapes the storage root: {key!r}")
        return path

    def begin_write(self, key: str) -> LocalWriter:
        return LocalWriter(self._path_for_key(key))

    def put_bytes(self, key: str, data: bytes) -> str:
        writer = self.begin_write(key)
        try:
            writer.write(data)
            return writer.commit()
        except BaseException:
            writer.abort()
            raise

    def _file(self, location: str) -> Path:
        """The resolved file a location names. Callers check the canonical form first (a
        client's location is checked against its allowed prefixes); reading the same resolved
        path keeps the check and the read on one form."""
        parsed = self.canonical(location)
        if parsed.scheme != "file":
            raise LocationError(f"not a file:// location: {location!r}")
        return Path(parsed.path)

    def size_of(self, location: str) -> int:
        return self._file(location).stat().st_size

    def read_chunks(self, location: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        with open(self._file(location), "rb") as f:
            while chunk := f.read(chunk_size):
                yield chunk

    def read_bytes(self, location: str) -> bytes:
        return self._file(location).read_bytes()

    def delete(self, location: str) -> None:
        self._file(location).unlink(missing_ok=True)

    def contains(self, location: str) -> bool:
        try:
            return self.canonical(location).within(self.root_location)
        except LocationError:
            return False

    def iter_objects(self, prefix: str, start_after: str = "") -> Iterator[StoredObject]:
        """Regular files under the prefix folder, ordered by path components (a folder's files
        and subfolders by name together); temporary `.part` files and links are skipped (a link
        could point out of the root)."""
        base = self._path_for_key(prefix.strip("/"))
        after = tuple(start_after.split("/")) if start_after else ()
        if base.is_dir():
            for parts, path, info in _walk(base, base.relative_to(self.root).parts, after):
                modified = datetime.fromtimestamp(info.st_mtime, UTC)
                yield StoredObject("/".join(parts), path.as_uri(), modified)

    def delete_stale_partials(self, cutoff: datetime, limit: int) -> int:
        """Removes `.part` files (an upload's temporary file) not written since `cutoff`: a live
        upload touches its file with every chunk, so only abandoned ones are that old."""
        removed = 0
        threshold = cutoff.timestamp()
        for dirpath, _dirnames, filenames in os.walk(self.root):
            for name in filenames:
                if removed >= limit:
                    return removed
                path = Path(dirpath) / name
                try:
                    if _is_partial(name) and path.lstat().st_mtime < threshold:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed


def _is_partial(name: str) -> bool:
    """LocalWriter's temporary files are named `.<final name>.<uuid>.part`."""
    return name.startswith(".") and name.endswith(".part")


def _walk(
    folder: Path, parts: tuple[str, ...], after: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], Path, os.stat_result]]:
    """Files below `folder` in component order, skipping every key up to `after` without
    descending into folders that lie wholly before it."""
    try:
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda e: e.name)
    except FileNotFoundError:
        return
    for entry in entries:
        key = (*parts, entry.name)
        try:
            if entry.is_dir(follow_symlinks=False):
                if key >= after[: len(key)]:
                    yield from _walk(Path(entry.path), key, after)
            elif entry.is_file(follow_symlinks=False) and not _is_partial(entry.name) and key > after:
                yield key, Path(entry.path), entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
