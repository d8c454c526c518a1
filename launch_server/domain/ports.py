"""The small interfaces the domain services need from the store and from object storage.
Adapters implement them for real (store/, storage/); unit tests implement them in memory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from launch_server.domain.entities import ApiKeyRecord, Bundle, Page
from launch_server.domain.locations import Location


class ArtifactWriter(Protocol):
    """A write in progress: nothing is visible at the final location until commit()."""

    def write(self, data: bytes) -> None: ...

    def commit(self) -> str:
        """Makes the object visible at its final key and returns its location URL."""
        ...

    def abort(self) -> None:
        """Discards everything written; safe to call more than once and after a failed commit."""
        ...


@dataclass(frozen=True)
class StoredObject:
    """One committed object: its key under the storage root, its location URL, when it was
    last written."""

    key: str
    location: str
    modified: datetime


class ObjectStorage(Protocol):
    """Artifacts and results. Locations are URLs: file:///... or s3://bucket/key."""

    root_url: str
    root_location: Location

    def canonical(self, location: str) -> Location:
        """The location decoded and normalized once (links resolved where the storage has them):
        the form every check runs on and every read uses. Raises LocationError."""
        ...

    def begin_write(self, key: str) -> ArtifactWriter: ...

    def size_of(self, location: str) -> int:
        """Size in bytes of the object; raises FileNotFoundError when it does not exist."""
        ...

    def read_chunks(self, location: str, chunk_size: int = 1 << 20) -> Iterator[bytes]: ...

    def delete(self, location: str) -> None: ...

    def contains(self, location: str) -> bool:
        """True when the location lies under this storage's root (the server manages it)."""
        ...

    def iter_objects(self, prefix: str, start_after: str = "") -> Iterator[StoredObject]:
        """Committed objects under a folder of the root, in the storage's key order, after the
        key `start_after` when given; listed in pages, so a caller that stops early has read
        little. Writes in progress are not listed."""
        ...

    def delete_stale_partials(self, cutoff: datetime, limit: int) -> int:
        """Discards at most `limit` writes in progress last touched before `cutoff` (temporary
        files, multipart uploads): what a server killed mid-upload leaves; returns how many."""
        ...


class BundleRepository(Protocol):
    def add(self, bundle: Bundle) -> Bundle:
        """Inserts; raises AlreadyExists when (owner, name) is taken."""
        ...

    def get(self, owner: str, name: str) -> Bundle | None: ...

    def get_by_request_id(self, owner: str, request_id: str) -> Bundle | None: ...

    def list(self, owner: str, page_size: int, page_token: str) -> Page: ...

    def delete(self, owner: str, name: str) -> Bundle:
        """Deletes and returns the row; raises NotFound, or FailedPrecondition while an endpoint
        uses the bundle (checked in the same transaction as the delete)."""
        ...


class ApiKeyRepository(Protocol):
    def add(self, record: ApiKeyRecord) -> None: ...

    def get(self, key_id: str) -> ApiKeyRecord | None: ...

    def list(self, owner: str | None = None) -> list[ApiKeyRecord]: ...

    def revoke(self, key_id: str) -> bool: ...
