"""ModelBundleService servicer: translates messages and delegates to the domain service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import grpc
from launch.v1 import model_bundle_pb2 as bpb
from launch.v1 import model_bundle_pb2_grpc as bgrpc

from launch_server.api.auth import owner
from launch_server.api.convert import bundle_spec_from_proto, bundle_to_proto
from launch_server.domain.bundles import BundleService, UploadHeader
from launch_server.domain.errors import InvalidArgument


async def _chunks(
    requests: AsyncIterator[bpb.UploadModelBundleRequest], received: Callable[[int], None]
) -> AsyncIterator[bytes]:
    async for message in requests:
        if message.WhichOneof("content") != "chunk":
            raise InvalidArgument("header", "may only be sent once, as the first message")
        received(len(message.chunk))
        yield message.chunk


def _uncounted(owner: str, size: int) -> None:
    return None


class ModelBundleServicer(bgrpc.ModelBundleServiceServicer):
    def __init__(self, bundles: BundleService, count_upload: Callable[[str, int], None] = _uncounted) -> None:
        """`count_upload(owner, bytes)` hears of every chunk an upload receives (a metric)."""
        self._bundles = bundles
        self._count_upload = count_upload

    async def UploadModelBundle(
        self, request_iterator: AsyncIterator[bpb.UploadModelBundleRequest], context: grpc.aio.ServicerContext
    ) -> bpb.UploadModelBundleResponse:
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("content") != "header":
            raise InvalidArgument("header", "the first message of an upload must be the header")
        h = first.header
        header = UploadHeader(
            spec=bundle_spec_from_proto(h.bundle, "header.bundle"),
            size_bytes=h.size_bytes,
            sha256=h.sha256,
            request_id=h.request_id,
        )
        who = owner()
        count = self._count_upload
        bundle = await self._bundles.upload(who, header, _chunks(request_iterator, lambda size: count(who, size)))
        return bpb.UploadModelBundleResponse(model_bundle=bundle_to_proto(bundle))

    async def CreateModelBundle(
        self, request: bpb.CreateModelBundleRequest, context: grpc.aio.ServicerContext
    ) -> bpb.CreateModelBundleResponse:
        spec = bundle_spec_from_proto(request.bundle, "bundle")
        bundle = await self._bundles.create_from_location(owner(), spec, request.request_id)
        return bpb.CreateModelBundleResponse(model_bundle=bundle_to_proto(bundle))

    async def GetModelBundle(
        self, request: bpb.GetModelBundleRequest, context: grpc.aio.ServicerContext
    ) -> bpb.GetModelBundleResponse:
        bundle = await self._bundles.get(owner(), request.name)
        return bpb.GetModelBundleResponse(model_bundle=bundle_to_proto(bundle))

    async def ListModelBundles(
        self, request: bpb.ListModelBundlesRequest, context: grpc.aio.ServicerContext
    ) -> bpb.ListModelBundlesResponse:
        page = await self._bundles.list(owner(), request.page_size, request.page_token)
        return bpb.ListModelBundlesResponse(
            model_bundles=[bundle_to_proto(b) for b in page.items], next_page_token=page.next_page_token
        )

    async def DeleteModelBundle(
        self, request: bpb.DeleteModelBundleRequest, context: grpc.aio.ServicerContext
    ) -> bpb.DeleteModelBundleResponse:
        await self._bundles.delete(owner(), request.name)
        return bpb.DeleteModelBundleResponse(deleted=True)
