"""InferenceService messages <-> the replica's plain-dict requests and answers. Shared by the
server's servicer and the replica's own InferenceService (direct route), so both check input the
same way; it imports no server layer beyond the domain's errors and value checks, so replicas
can load it cheaply."""

from __future__ import annotations

from launch.v1 import inference_pb2 as ipb

from launch_server.domain.errors import InvalidArgument
from launch_server.domain.json_input import MAX_ARGS_JSON_BYTES, parse_json_object
from launch_server.domain.validation import MAX_URL_LEN, validate_printable

MAX_URL = MAX_URL_LEN


def request_from_input(message: ipb.RequestInput, field: str) -> dict[str, object]:
    """Exactly one of url and args_json; args must be a JSON object. The server only checks the
    JSON's shape; it never deserializes user objects (pickles are opened only in replicas)."""
    kind = message.WhichOneof("input")
    if kind is None:
        raise InvalidArgument(f"{field}", "exactly one of url and args_json is required")
    if kind == "url":
        if not message.url or len(message.url) > MAX_URL:
            raise InvalidArgument(f"{field}.url", f"must be 1 to {MAX_URL} characters")
        validate_printable(f"{field}.url", message.url)
        return {"url": message.url, "return_pickled": message.return_pickled}
    parse_json_object(
        f"{field}.args_json", message.args_json, MAX_ARGS_JSON_BYTES, "a JSON object of keyword arguments"
    )
    return {"args_json": message.args_json, "return_pickled": message.return_pickled}


def input_from_request(payload: dict[str, object]) -> ipb.RequestInput:
    """The inverse of request_from_input: a stored task's request, sent to a replica's own port."""
    return_pickled = bool(payload.get("return_pickled"))
    if "url" in payload:
        return ipb.RequestInput(url=str(payload["url"]), return_pickled=return_pickled)
    return ipb.RequestInput(args_json=str(payload["args_json"]), return_pickled=return_pickled)


def result_to_proto(answer: dict[str, object]) -> ipb.InferenceResult:
    state = ipb.RESULT_STATE_SUCCESS if answer.get("state") == "SUCCESS" else ipb.RESULT_STATE_FAILURE
    return ipb.InferenceResult(
        state=state,
        result=str(answer.get("result") or ""),
        result_url=str(answer.get("result_url") or ""),
        traceback=str(answer.get("traceback") or ""),
    )


def answer_from_result(result: ipb.InferenceResult) -> dict[str, object]:
    """The inverse of result_to_proto: a replica's answer as its Serve handle gives it."""
    return {
        "state": "SUCCESS" if result.state == ipb.RESULT_STATE_SUCCESS else "FAILURE",
        "result": result.result,
        "result_url": result.result_url,
        "traceback": result.traceback,
    }
