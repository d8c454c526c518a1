"""InferenceService servicer: the sync data plane. Builds the replica request from the message,
lets the router run it within the caller's deadline, and maps the replica's answer back."""

from __future__ import annotations

import json

import grpc
from launch.v1 import inference_pb2 as ipb
from launch.v1 import inference_pb2_grpc as igrpc

from launch_server.domain.errors import EndpointUnavailable, InvalidArgument, NotImplementedYet
from launch_server.domain.validation import validate_name
from launch_server.serving.router import Router

from .auth import owner

MAX_URL = 2048


def request_from_input(message: ipb.RequestInput, field: str) -> dict[str, object]:
    """Exactly one of url and args_json; args must be a JSON object. The server only checks the
    JSON's shape; it never deserializes user objects (pickles are opened only in replicas)."""
    kind = message.WhichOneof("input")
    if kind is None:
        raise InvalidArgument(f"{field}", "exactly one of url and args_json is required")
    if kind == "url":
        if not message.url or len(message.url) > MAX_URL:
            raise InvalidArgument(f"{field}.url", f"must be 1 to {MAX_URL} characters")
        return {"url": message.url, "return_pickled": message.return_pickled}
    try:
        args = json.loads(message.args_json)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"{field}.args_json", f"is not valid JSON: {exc}") from None
    if not isinstance(args, dict):
        raise InvalidArgument(f"{field}.args_json", "must be a JSON object of keyword arguments")
    return {"args_json": message.args_json, "return_pickled": message.return_pickled}


def result_to_proto(answer: dict[str, object]) -> ipb.InferenceResult:
    state = ipb.RESULT_STATE_SUCCESS if answer.get("state") == "SUCCESS" else ipb.RESULT_STATE_FAILURE
    return ipb.InferenceResult(
        state=state,
        result=str(answer.get("result") or ""),
        result_url=str(answer.get("result_url") or ""),
        traceback=str(answer.get("traceback") or ""),
    )


class InferenceServicer(igrpc.InferenceServiceServicer):
    def __init__(self, router: Router | None) -> None:
        self._router = router

    async def Predict(self, request: ipb.PredictRequest, context: grpc.aio.ServicerContext) -> ipb.PredictResponse:
        validate_name("endpoint_name", request.endpoint_name)
        if not request.HasField("input"):
            raise InvalidArgument("input", "is required")
        payload = request_from_input(request.input, "input")
        if self._router is None:
            raise EndpointUnavailable("this server runs without a serving layer (LAUNCH_SERVING=0)")
        answer = await self._router.predict(owner(), request.endpoint_name, payload, context.time_remaining())
        return ipb.PredictResponse(result=result_to_proto(answer))

    async def PredictStream(self, request, context):  # type: ignore[no-untyped-def]
        raise NotImplementedYet("InferenceService.PredictStream is not served by this server version yet")
        yield  # pragma: no cover - makes this an async generator
