"""Turns domain errors into gRPC statuses with rich details (google.rpc.ErrorInfo, and
google.rpc.BadRequest for a bad field), via grpcio-status."""

from __future__ import annotations

import logging

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from launch_server.domain import errors as de

DOMAIN = "launch.v1"
# Statuses travel in trailers, which gRPC caps at a few KiB: a message echoing a long client value
# would turn the answer into RESOURCE_EXHAUSTED, so messages and names are cut to this length.
MAX_DETAIL_CHARS = 1024


def _cut(text: str) -> str:
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 3] + "..."


log = logging.getLogger(__name__)

_CODES: list[tuple[type[de.DomainError], grpc.StatusCode]] = [
    (de.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (de.NotFound, grpc.StatusCode.NOT_FOUND),
    (de.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (de.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (de.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (de.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (de.EndpointUnavailable, grpc.StatusCode.UNAVAILABLE),
    (de.StoreUnavailable, grpc.StatusCode.UNAVAILABLE),
    (de.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (de.NotServedHere, grpc.StatusCode.UNIMPLEMENTED),
]


def status_code_for(error: de.DomainError) -> grpc.StatusCode:
    for kind, code in _CODES:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.UNKNOWN


def _pack(message) -> any_pb2.Any:  # type: ignore[no-untyped-def]
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def to_status(error: de.DomainError) -> grpc.Status:
    code = status_code_for(error)
    metadata = {}
    if isinstance(error, de.InvalidArgument):
        metadata["field"] = _cut(error.field)
    if isinstance(error, (de.NotFound, de.AlreadyExists)):
        metadata["kind"] = error.kind
        metadata["name"] = _cut(error.name)
    details = [_pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=metadata))]
    if isinstance(error, de.InvalidArgument):
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=_cut(error.field), description=_cut(error.description)
                        )
                    ]
                )
            )
        )
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=_cut(error.message), details=details)
    return rpc_status.to_status(status)


def internal_status(exc: BaseException) -> grpc.Status:
    """An unexpected failure: logged in full here, answered as INTERNAL without internals."""
    log.exception("unhandled error in RPC", exc_info=exc)
    status = status_pb2.Status(code=code_pb2.INTERNAL, message=f"internal error: {type(exc).__name__}")
    return rpc_status.to_status(status)
