"""The request and answer types (domain/requests.py) as protobuf messages, at the gRPC edges:
InferenceService (the server's and each replica's own) and the replica's task channel. A client's
input is checked here, once, where it enters; the server's servicers and the replica's listener
share this module, so both check it the same way. The server only checks a request's shape: it
never deserializes user objects (pickles are opened only in replicas)."""

from __future__ import annotations

from typing import Any

from launch.v1 import inference_pb2 as ipb

from launch_server.domain.errors import InvalidArgument
from launch_server.domain.json_input import MAX_ARGS_JSON_BYTES, parse_json_object
from launch_server.domain.requests import FAILURE, SUCCESS, InferenceAnswer, InferenceRequest
from launch_server.domain.validation import MAX_URL_LEN, validate_printable

MAX_URL = MAX_URL_LEN


def request_from_proto(message: ipb.RequestInput, field: str) -> InferenceRequest:
    """Exactly one of url and args_json; args must be a JSON object."""
    kind = message.WhichOneof("input")
    if kind is None:
        raise InvalidArgument(f"{field}", "exactly one of url and args_json is required")
    if kind == "url":
        if not message.url or len(message.url) > MAX_URL:
            raise InvalidArgument(f"{field}.url", f"must be 1 to {MAX_URL} characters")
        validate_printable(f"{field}.url", message.url)
        return InferenceRequest(url=message.url, return_pickled=message.return_pickled)
    parse_json_object(
        f"{field}.args_json", message.args_json, MAX_ARGS_JSON_BYTES, "a JSON object of keyword arguments"
    )
    return InferenceRequest(args_json=message.args_json, return_pickled=message.return_pickled)


def request_of(message: ipb.PredictRequest | Any, field: str = "input") -> InferenceRequest:
    """A Predict or RunTasks message's input; InvalidArgument when it has none or it is malformed."""
    if not message.HasField("input"):
        raise InvalidArgument(field, "is required")
    return request_from_proto(message.input, field)


def request_to_proto(request: InferenceRequest) -> ipb.RequestInput:
    if request.url:
        return ipb.RequestInput(url=request.url, return_pickled=request.return_pickled)
    return ipb.RequestInput(args_json=request.args_json, return_pickled=request.return_pickled)


def answer_to_proto(answer: InferenceAnswer) -> ipb.InferenceResult:
    return ipb.InferenceResult(
        state=ipb.RESULT_STATE_SUCCESS if answer.succeeded else ipb.RESULT_STATE_FAILURE,
        result=answer.result,
        result_url=answer.result_url,
        traceback=answer.traceback,
    )


def stream_message(first: InferenceAnswer, more: list[InferenceAnswer]) -> ipb.PredictStreamResponse:
    """One PredictStream message: the next answer and those already waiting behind it."""
    return ipb.PredictStreamResponse(result=answer_to_proto(first), more=[answer_to_proto(a) for a in more])


def answers_of_message(message: ipb.PredictStreamResponse) -> list[InferenceAnswer]:
    """The answers one PredictStream message carries, in order."""
    return [answer_from_proto(message.result), *(answer_from_proto(r) for r in message.more)]


def answer_from_proto(result: ipb.InferenceResult) -> InferenceAnswer:
    return InferenceAnswer(
        state=SUCCESS if result.state == ipb.RESULT_STATE_SUCCESS else FAILURE,
        result=result.result,
        result_url=result.result_url,
        traceback=result.traceback,
    )
