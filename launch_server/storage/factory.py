"""Opens the storage a URL names: file:///dir (or a plain path) or s3://bucket/prefix."""

from __future__ import annotations

from pathlib import Path

from launch_server.storage.local import LocalStorage, path_of


def open_storage(url: str, s3_endpoint_url: str | None = None, s3_region: str | None = None):
    """The adapter for the server's own storage URL (an operator's setting, not a client's)."""
    if url.startswith("s3://"):
        from launch_server.storage.s3 import S3Storage

        return S3Storage(url, endpoint_url=s3_endpoint_url, region=s3_region)
    if url.startswith("file://"):
        return LocalStorage(path_of(url))
    if "://" in url:
        raise ValueError(f"unsupported storage URL {url!r}: use file:///dir or s3://bucket/prefix")
    return LocalStorage(Path(url))
