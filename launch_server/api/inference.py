"""InferenceService servicer: the sync data plane. Builds the replica request from the message,
lets the router run it within the caller's deadline, and maps the replica's answer back."""

from __future__ import annotations

import grpc
from launch.v1 import inference_pb2 as ipb
from launch.v1 import inference_pb2_grpc as igrpc

from launch_server.api.auth import owner
from launch_server.domain.errors import EndpointUnavailable, NotServedHere
from launch_server.domain.validation import validate_name
from launch_server.serving.router import Router
from launch_server.wire.messages import answer_to_proto, request_of


class InferenceServicer(igrpc.InferenceServiceServicer):
    def __init__(self, router: Router | None) -> None:
        self._router = router

    async def Predict(self, request: ipb.PredictRequest, context: grpc.aio.ServicerContext) -> ipb.PredictResponse:
        validate_name("endpoint_name", request.endpoint_name)
        inference = request_of(request)
        if self._router is None:
            raise EndpointUnavailable("this server runs without a serving layer (LAUNCH_SERVING=0)")
        answer = await self._router.predict(owner(), request.endpoint_name, inference, context.time_remaining())
        return ipb.PredictResponse(result=answer_to_proto(answer))

    async def PredictStream(self, request, context):  # type: ignore[no-untyped-def]
        raise NotServedHere("InferenceService.PredictStream is not served by this server version yet")
        yield  # pragma: no cover - makes this an async generator
