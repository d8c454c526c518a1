"""Launch: turn a Python function into an autoscaling inference service.

The documented Scale Launch SDK surface, served by a gRPC server on Ray Serve."""

from .batching import batched
from .client import LaunchClient
from .connection import Connection
from .endpoint_stats import EndpointStats
from .errors import (
    AlreadyExistsError,
    APIError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    LaunchError,
    NotFoundError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)
from .hooks import PostInferenceHooks
from .model_bundle import ModelBundle
from .model_endpoint import (
    AsyncEndpoint,
    AsyncEndpointBatchResponse,
    Endpoint,
    EndpointRequest,
    EndpointResponse,
    EndpointResponseFuture,
    EndpointResponseStream,
    ModelEndpoint,
    StreamingEndpoint,
    SyncEndpoint,
)
from .runtime_logs import EndpointLogLine

__version__ = "0.1.0"

__all__ = [
    "APIError",
    "AlreadyExistsError",
    "AsyncEndpoint",
    "AsyncEndpointBatchResponse",
    "Connection",
    "DeadlineExceededError",
    "Endpoint",
    "EndpointLogLine",
    "EndpointStats",
    "EndpointRequest",
    "EndpointResponse",
    "EndpointResponseFuture",
    "EndpointResponseStream",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "LaunchClient",
    "LaunchError",
    "ModelBundle",
    "ModelEndpoint",
    "NotFoundError",
    "PostInferenceHooks",
    "ResourceExhaustedError",
    "StreamingEndpoint",
    "SyncEndpoint",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "batched",
]
