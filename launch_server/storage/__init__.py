"""Object storage adapters: a local directory (default) and S3 through boto3."""

from __future__ import annotations

from launch_server.storage.factory import open_storage

__all__ = ["open_storage"]
