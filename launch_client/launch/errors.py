"""One error hierarchy for the SDK. Every server error keeps its gRPC status code, the server's
stable reason (google.rpc.ErrorInfo) and, for validation errors, the offending field."""

from __future__ import annotations

from typing import Any

import grpc


class LaunchError(Exception):
    """Base of every error the SDK raises for a failed call."""

    default_code: grpc.StatusCode | None = None

    def __init__(
        self,
        message: str,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        field: str = "",
        metadata: dict[str, str] | None = None,
        has_details: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        # Errors raised on the client side (before any call) still carry the status they mean.
        self.code = code if code is not None else self.default_code
        self.reason = reason
        self.field = field
        self.metadata = metadata or {}
        # launch-server attaches rich status details to every error it sends; an error without
        # them came from gRPC itself (say, UNIMPLEMENTED for a method an older server lacks).
        self.has_details = has_details

    def __str__(self) -> str:
        code = self.code.name if self.code else "ERROR"
        return f"{code}: {self.message}"


APIError = LaunchError  # the original client's name for the same thing


class InvalidArgumentError(LaunchError, ValueError):
    """A request field was rejected; `.field` names it."""

    default_code = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(LaunchError):
    """The resource does not exist (or belongs to another owner)."""

    default_code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(LaunchError):
    """A resource with that name already exists."""

    default_code = grpc.StatusCode.ALREADY_EXISTS


class UnauthenticatedError(LaunchError):
    """The API key is missing, wrong or revoked."""

    default_code = grpc.StatusCode.UNAUTHENTICATED


class FailedPreconditionError(LaunchError):
    """The resource's state forbids the call (in use, wrong endpoint type)."""

    default_code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhaustedError(LaunchError):
    """A limit was exceeded (upload size, queue length)."""

    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class UnavailableError(LaunchError):
    """The server or endpoint cannot serve now; retrying later may succeed."""

    default_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceededError(LaunchError, TimeoutError):
    """The call's deadline passed."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class UnimplementedError(LaunchError, NotImplementedError):
    """The server does not serve this RPC (yet)."""

    default_code = grpc.StatusCode.UNIMPLEMENTED


_BY_CODE: dict[grpc.StatusCode, type[LaunchError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNIMPLEMENTED: UnimplementedError,
}


def from_rpc_error(error: grpc.RpcError) -> LaunchError:
    """Builds the matching LaunchError from a failed call, reading the rich status details."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    code: Any = error.code() if hasattr(error, "code") else None
    message = error.details() if hasattr(error, "details") else str(error)
    reason, field, metadata = "", "", {}
    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
    except (ValueError, AttributeError):
        status = None
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, metadata = info.reason, dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                if bad.field_violations:
                    field = bad.field_violations[0].field
    trailers = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    has_details = any(key == "grpc-status-details-bin" for key, _ in trailers or ())
    kind = _BY_CODE.get(code, LaunchError)
    return kind(message or "", code=code, reason=reason, field=field, metadata=metadata, has_details=has_details)
