"""Domain errors. The api layer maps each to one gRPC status and a stable ErrorInfo reason, so
every layer below it can fail in words without knowing about gRPC."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a client is meant to see. `reason` is the stable ErrorReason name."""

    reason = "ERROR_REASON_UNSPECIFIED"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(DomainError):
    """A request field is missing or ill-formed; `field` names it (dotted path)."""

    reason = "ERROR_REASON_INVALID_FIELD"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.description = message


class NotFound(DomainError):
    """The resource does not exist for this owner (another owner's resource answers the same)."""

    reason = "ERROR_REASON_NOT_FOUND"

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} {name!r} not found")
        self.kind = kind
        self.name = name


class AlreadyExists(DomainError):
    """A resource with that name already exists for this owner."""

    reason = "ERROR_REASON_ALREADY_EXISTS"

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} {name!r} already exists")
        self.kind = kind
        self.name = name


class FailedPrecondition(DomainError):
    """The resource's state forbids the call (in use, wrong endpoint type, not ready)."""

    reason = "ERROR_REASON_FAILED_PRECONDITION"


class Unauthenticated(DomainError):
    """The API key is missing, malformed, unknown or revoked."""

    reason = "ERROR_REASON_UNAUTHENTICATED"


class ResourceExhausted(DomainError):
    """A configured limit was exceeded (upload size, queue length)."""

    reason = "ERROR_REASON_RESOURCE_EXHAUSTED"


class ChecksumMismatch(InvalidArgument):
    """Uploaded bytes did not match the declared size or sha256."""

    reason = "ERROR_REASON_CHECKSUM_MISMATCH"


class EndpointUnavailable(DomainError):
    """The endpoint cannot serve now; the message says why (not ready, missing resource)."""

    reason = "ERROR_REASON_ENDPOINT_UNAVAILABLE"


class DeadlineExceeded(DomainError):
    """The caller's deadline passed before the work finished."""

    reason = "ERROR_REASON_UNSPECIFIED"


class NotServedHere(DomainError):
    """The RPC is part of the contract but this server does not serve it: its version lacks it,
    or it runs without the part that serves it (LAUNCH_SERVING=0)."""

    reason = "ERROR_REASON_NOT_IMPLEMENTED"


class StoreUnavailable(DomainError):
    """The database cannot be reached or did not answer in time (down, restarting, a statement or
    pool timeout). The same call may succeed later, so it answers UNAVAILABLE, which clients
    retry, instead of reading as a server bug. A connection lost during a commit may have
    committed: the calls the SDK retries are idempotent (reads, submits with a request_id)."""

    reason = "ERROR_REASON_UNSPECIFIED"
