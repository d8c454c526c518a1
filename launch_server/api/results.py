"""TaskService.DownloadResult: streams a stored pickled result to its owner, so clients need no
storage credentials. Results live under results/<owner tag>/, which is how ownership is checked
without a database lookup; the server streams bytes and never unpickles them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from launch.v1 import task_pb2 as tpb

from launch_server.domain.errors import InvalidArgument, NotFound
from launch_server.domain.ownership import owner_tag
from launch_server.domain.ports import ObjectStorage

from .auth import owner

CHUNK = 1 << 20


async def download_result(
    storage: ObjectStorage, request: tpb.DownloadResultRequest, context: grpc.aio.ServicerContext
) -> AsyncIterator[tpb.DownloadResultResponse]:
    url = request.result_url
    if not url:
        raise InvalidArgument("result_url", "is required")
    prefix = f"{storage.root_url.rstrip('/')}/results/{owner_tag(owner())}/"
    if not url.startswith(prefix) or ".." in url[len(prefix) :].split("/"):
        raise NotFound("result", url)
    try:
        iterator = await asyncio.to_thread(lambda: iter(storage.read_chunks(url, CHUNK)))
        while True:
            chunk = await asyncio.to_thread(next, iterator, None)
            if chunk is None:
                return
            yield tpb.DownloadResultResponse(chunk=chunk)
    except FileNotFoundError:
        raise NotFound("result", url) from None
