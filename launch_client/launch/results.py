"""Stored results (task results, batch job results), streamed through the server: result
locations are the server's storage, which the caller need not be able to reach itself."""

from __future__ import annotations

from typing import Any

import cloudpickle

from launch.v1 import task_pb2 as tpb

from .connection import Connection


def download_result(connection: Connection, result_url: str) -> bytes:
    """The stored bytes behind a result_url."""
    chunks = connection.stream(
        connection.tasks.DownloadResult, tpb.DownloadResultRequest(result_url=result_url), timeout=connection.timeout
    )
    return b"".join(c.chunk for c in chunks)


def load_pickled_result(connection: Connection, result_url: str) -> Any:
    """Downloads and unpickles a result (this runs in the caller's process, never the server)."""
    return cloudpickle.loads(download_result(connection, result_url))
