"""TaskService.DownloadResult: streams a stored pickled result to its owner, so clients need no
storage credentials. Results live under results/<owner tag>/, which is how ownership is checked
without a database lookup; the server streams bytes and never unpickles them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from launch.v1 import task_pb2 as tpb

from launch_server.api.auth import owner
from launch_server.domain.errors import InvalidArgument, NotFound
from launch_server.domain.locations import LocationError
from launch_server.domain.ownership import results_prefix
from launch_server.domain.ports import ObjectStorage

CHUNK = 1 << 20


async def download_result(
    storage: ObjectStorage, request: tpb.DownloadResultRequest, context: grpc.aio.ServicerContext
) -> AsyncIterator[tpb.DownloadResultResponse]:
    url = request.result_url
    if not url:
        raise InvalidArgument("result_url", "is required")
    # Checked and read in canonical form: decoded once, normalized, links resolved (a result URL
    # that leaves the caller's folder in any spelling is simply not one of the caller's results).
    try:
        canonical = storage.canonical(url)
    except LocationError:
        raise NotFound("result", url) from None
    if not canonical.within(storage.root_location.child(results_prefix(owner()))):
        raise NotFound("result", url)
    url = canonical.url
    try:
        iterator = await asyncio.to_thread(lambda: iter(storage.read_chunks(url, CHUNK)))
        while True:
            chunk = await asyncio.to_thread(next, iterator, None)
            if chunk is None:
                return
            yield tpb.DownloadResultResponse(chunk=chunk)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise NotFound("result", url) from None
