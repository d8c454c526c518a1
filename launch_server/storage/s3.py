"""S3 storage through boto3, for AWS or any S3-compatible server (endpoint URL configurable).

Uploads use multipart upload with 8 MiB parts, so the server holds one part in memory at most;
nothing is visible at the key until CompleteMultipartUpload, and abort() discards the parts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from launch_server.domain.locations import Location, LocationError, parse_location
from launch_server.domain.ports import StoredObject

PART_SIZE = 8 << 20
LIST_PAGE = 1000


def split_s3_url(location: str) -> tuple[str, str]:
    """Bucket and key of an `s3://` location, decoded and checked once (domain/locations.py)."""
    parsed = parse_location(location)
    if parsed.scheme != "s3":
        raise LocationError(f"not an s3:// location: {location!r}")
    return parsed.bucket, parsed.path


class S3Writer:
    """One object being written. write/commit/abort are serialized by a lock: when an upload's RPC
    is cancelled, the thread running its last write() goes on while the server calls abort(), and
    without the lock that write could start the multipart upload (or add a part) after the abort,
    leaving parts behind."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._upload_id: str | None = None
        self._done = False
        self._aborted = False
        self._lock = threading.Lock()

    def _flush_part(self) -> None:
        if self._upload_id is None:
            self._upload_id = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key)["UploadId"]
        number = len(self._parts) + 1
        response = self._client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=bytes(self._buffer),
        )
        self._parts.append({"ETag": response["ETag"], "PartNumber": number})
        self._buffer.clear()

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._aborted:
                raise RuntimeError(f"write to s3://{self._bucket}/{self._key} after abort")
            self._buffer += data
            if len(self._buffer) >= PART_SIZE:
                self._flush_part()

    def commit(self) -> str:
        with self._lock:
            if self._aborted:
                raise RuntimeError(f"commit of s3://{self._bucket}/{self._key} after abort")
            return self._commit()

    def _commit(self) -> str:
        if self._upload_id is None:
            # Small object: one PUT, no multipart bookkeeping.
            self._client.put_object(Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer))
        else:
            if self._buffer:
                self._flush_part()
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._done = True
        self._buffer = bytearray()
        return f"s3://{self._bucket}/{self._key}"

    def abort(self) -> None:
        """Waits for a write (or commit) still in flight, then discards the parts, or the object
        itself when a commit got through (its caller was cancelled meanwhile); later writes fail."""
        with self._lock:
            self._aborted = True
            self._buffer = bytearray()
            if self._done:
                self._client.delete_object(Bucket=self._bucket, Key=self._key)
            elif self._upload_id is not None:
                self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id)
                self._upload_id = None


class S3Storage:
    def __init__(self, root_url: str, endpoint_url: str | None = None, region: str | None = None) -> None:
        import boto3  # deferred: a client-only install never needs boto3

        self.bucket, prefix = split_s3_url(root_url.rstrip("/") + "/")
        self.prefix = prefix.rstrip("/")
        self.root_url = f"s3://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        self.root_location = Location("s3", self.bucket, self.prefix)
        self._client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region or "us-east-1")

    def canonical(self, location: str) -> Location:
        """The location in canonical form (S3 has no links to resolve); raises LocationError."""
        return parse_location(location)

    def _key(self, key: str) -> str:
        if any(part in ("", ".", "..") for part in key.split("/")):
            raise LocationError(f"key escapes the storage root: {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def begin_write(self, key: str) -> S3Writer:
        return S3Writer(self._client, self.bucket, self._key(key))

    def put_bytes(self, key: str, data: bytes) -> str:
        full = self._key(key)
        self._client.put_object(Bucket=self.bucket, Key=full, Body=data)
        return f"s3://{self.bucket}/{full}"

    def size_of(self, location: str) -> int:
        bucket, key = split_s3_url(location)
        try:
            return int(self._client.head_object(Bucket=bucket, Key=key)["ContentLength"])
        except self._client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(location) from None
            raise

    def read_chunks(self, location: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        bucket, key = split_s3_url(location)
        try:
            body = self._client.get_object(Bucket=bucket, Key=key)["Body"]
        except self._client.exceptions.NoSuchKey:
            raise FileNotFoundError(location) from None
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def read_bytes(self, location: str) -> bytes:
        bucket, key = split_s3_url(location)
        return self._client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def delete(self, location: str) -> None:
        bucket, key = split_s3_url(location)
        self._client.delete_object(Bucket=bucket, Key=key)

    def contains(self, location: str) -> bool:
        try:
            return self.canonical(location).within(self.root_location)
        except LocationError:
            return False

    def iter_objects(self, prefix: str, start_after: str = "") -> Iterator[StoredObject]:
        """Objects under the prefix folder, in key order, 1,000 per ListObjectsV2 page."""
        full = self._key(prefix.strip("/")) + "/"
        skip = len(self.prefix) + 1 if self.prefix else 0
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full, "PaginationConfig": {"PageSize": LIST_PAGE}}
        if start_after:
            kwargs["StartAfter"] = self._key(start_after)
        pages = self._client.get_paginator("list_objects_v2").paginate(**kwargs)
        for page in pages:
            for obj in page.get("Contents", []):
                key = obj["Key"]
                yield StoredObject(key[skip:], f"s3://{self.bucket}/{key}", obj["LastModified"])

    def delete_stale_partials(self, cutoff: datetime, limit: int) -> int:
        """Aborts multipart uploads under the root neither begun nor added to since `cutoff`
        (S3 keeps their parts, and bills them, until aborted); a long upload that still adds
        parts is running and kept."""
        removed = 0
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "MaxUploads": LIST_PAGE}
        if self.prefix:
            kwargs["Prefix"] = self.prefix + "/"
        for page in self._client.get_paginator("list_multipart_uploads").paginate(**kwargs):
            for upload in page.get("Uploads", []):
                if removed >= limit:
                    return removed
                if upload["Initiated"] < cutoff and not self._written_since(upload, cutoff):
                    self._client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    removed += 1
        return removed

    def _written_since(self, upload: dict[str, Any], cutoff: datetime) -> bool:
        """Whether any part of the upload was written at or after `cutoff`."""
        pages = self._client.get_paginator("list_parts").paginate(
            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
        )
        return any(part["LastModified"] >= cutoff for page in pages for part in page.get("Parts", []))
