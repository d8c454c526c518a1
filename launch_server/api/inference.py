"""InferenceService servicer: the data plane through the server. Builds the replica request from
the message, lets the router run it within the caller's deadline, and maps the replica's answers
back: one for Predict, the replica's messages as they come for PredictStream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

import grpc
from launch.v1 import inference_pb2 as ipb
from launch.v1 import inference_pb2_grpc as igrpc

from launch_server.api.auth import owner
from launch_server.domain.errors import EndpointUnavailable, InvalidArgument
from launch_server.domain.validation import validate_name
from launch_server.serving.router import Router
from launch_server.wire.messages import answer_to_proto, request_of

NO_SERVING = "this server runs without a serving layer (LAUNCH_SERVING=0)"


class InferenceServicer(igrpc.InferenceServiceServicer):
    def __init__(self, router: Router | None) -> None:
        self._router = router

    async def Predict(self, request: ipb.PredictRequest, context: grpc.aio.ServicerContext) -> ipb.PredictResponse:
        validate_name("endpoint_name", request.endpoint_name)
        inference = request_of(request)
        if self._router is None:
            raise EndpointUnavailable(NO_SERVING)
        answer = await self._router.predict(owner(), request.endpoint_name, inference, context.time_remaining())
        return ipb.PredictResponse(result=answer_to_proto(answer))

    async def PredictStream(
        self, request: ipb.PredictStreamRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ipb.PredictStreamResponse]:
        """Each answer is sent as it is read: the next is read from the replica only once gRPC
        has taken this one, so a slow reader slows the generator instead of filling memory."""
        validate_name("endpoint_name", request.endpoint_name)
        inference = request_of(request)
        if inference.return_pickled:
            raise InvalidArgument("input.return_pickled", "must be false: every value is answered as JSON text")
        if self._router is None:
            raise EndpointUnavailable(NO_SERVING)
        replies = self._router.predict_stream(owner(), request.endpoint_name, inference, context.time_remaining())
        async with aclosing(replies):  # closed with this call: the replica's stream is cancelled at once
            async for reply in replies:
                yield reply
