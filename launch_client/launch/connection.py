"""Connection: the SDK's transport. It owns the gRPC channel and the stubs, attaches the API key
as `authorization: Bearer` metadata, applies deadlines, retries UNAVAILABLE for idempotent calls
only, and turns every failure into a LaunchError.

Every RPC of the SDK goes through this class: unary and client-streaming calls through `call`
/ `call_stream_unary`, server-streaming ones through `open_stream` (and `stream`, built on it),
all under one retry policy, `RetryBudget`.

UNAVAILABLE means the call did not get through now (the server restarting, its database down or
restarting) and may later. Idempotent calls (reads, and submits that carry a request_id, which
the server answers with the first attempt's result) are retried with jittered exponential backoff
for up to `retry_window_s` (long enough for a database restart), never past the call's deadline;
others (Predict, deletes) fail at once. A server stream is retried only until its first message:
before it nothing was consumed, so a fresh call is the same call."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

from launch.v1 import (
    batch_job_pb2_grpc,
    inference_pb2_grpc,
    model_bundle_pb2_grpc,
    model_endpoint_pb2_grpc,
    task_pb2_grpc,
)

from .errors import UnauthenticatedError, from_rpc_error

DEFAULT_ENDPOINT = "localhost:50051"
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MAX_RETRIES = 20
DEFAULT_RETRY_WINDOW_S = 30.0
# The largest message either side sends: a bundle chunk, a result, a batch of tasks. The server
# and the direct route's replicas accept the same size.
MAX_MESSAGE_BYTES = 64 << 20
T = TypeVar("T")

# What every channel the SDK opens (to the server, to a replica) shares.
BASE_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
    # Server-streaming calls (WatchTasks, CreateAndWatchTask, DownloadResult, PredictStream) read
    # their messages on the calling thread instead of through the channel's polling thread: one
    # thread hand-off less per message, which a stream's every chunk and an async request's
    # latency feel.
    ("SingleThreadedUnaryStream", 1),
]


def _target(endpoint: str) -> tuple[str, bool]:
    """Accepts host:port or http(s)://host:port; https means TLS."""
    if endpoint.startswith("https://"):
        return endpoint.removeprefix("https://").rstrip("/"), True
    return endpoint.removeprefix("http://").rstrip("/"), False


class Connection:
    """The channel to one server with one API key; thread-safe, shared by a client's threads."""

    def __init__(
        self,
        api_key: str | None = None,
        endpoint: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
        retry_window_s: float = DEFAULT_RETRY_WINDOW_S,
        root_certificates: bytes | None = None,
    ) -> None:
        api_key = api_key or os.environ.get("LAUNCH_API_KEY", "")
        if not api_key:
            raise UnauthenticatedError("no API key: pass api_key= or set LAUNCH_API_KEY")
        self.endpoint = endpoint or os.environ.get("LAUNCH_ENDPOINT", DEFAULT_ENDPOINT)
        self._metadata = (("authorization", f"Bearer {api_key}"),)
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_window_s = retry_window_s
        target, secure = _target(self.endpoint)
        self.secure = secure
        if secure:
            credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self.channel = grpc.secure_channel(target, credentials, options=BASE_CHANNEL_OPTIONS)
        else:
            self.channel = grpc.insecure_channel(target, options=BASE_CHANNEL_OPTIONS)
        self.bundles = model_bundle_pb2_grpc.ModelBundleServiceStub(self.channel)
        self.endpoints = model_endpoint_pb2_grpc.ModelEndpointServiceStub(self.channel)
        self.inference = inference_pb2_grpc.InferenceServiceStub(self.channel)
        self.tasks = task_pb2_grpc.TaskServiceStub(self.channel)
        self.batch_jobs = batch_job_pb2_grpc.BatchJobServiceStub(self.channel)
        self._key_hint = api_key.split("_")[1] if api_key.count("_") >= 2 else "?"

    def __repr__(self) -> str:
        # The key itself never appears: only its public id, which the server also logs.
        return f"Connection(endpoint={self.endpoint!r}, key_id={self._key_hint!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Connection) and (self.endpoint, self._metadata) == (
            other.endpoint,
            other._metadata,
        )

    def __hash__(self) -> int:
        return hash(self.endpoint)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The call metadata (the API key) for stubs used directly."""
        return self._metadata

    def close(self) -> None:
        self.channel.close()

    def call(
        self,
        method: Callable[..., T],
        request: Any,
        *,
        idempotent: bool,
        timeout: float | None = None,
    ) -> T:
        """Unary call with deadline and, for idempotent calls, retries on UNAVAILABLE."""
        return self._with_retries(lambda: request, method, idempotent, timeout)

    def call_stream_unary(
        self,
        method: Callable[..., T],
        make_requests: Callable[[], Iterator[Any]],
        *,
        idempotent: bool,
        timeout: float | None = None,
    ) -> T:
        """Client-streaming call; make_requests is called again for each retry."""
        return self._with_retries(make_requests, method, idempotent, timeout)

    def _with_retries(
        self, make_request: Callable[[], Any], method: Callable[..., T], idempotent: bool, timeout: float | None
    ) -> T:
        retries = self.retry_budget()
        while True:
            try:
                return method(make_request(), metadata=self._metadata, timeout=timeout or self.timeout)
            except grpc.RpcError as exc:
                if idempotent and retries.retry(exc):
                    continue
                raise from_rpc_error(exc) from None

    def open_stream(
        self,
        method: Callable[..., Any],
        request: Any,
        *,
        timeout: float | None = None,
        idempotent: bool = True,
        started: Callable[[Any], None] | None = None,
    ) -> ServerStream:
        """Starts a server-streaming call and waits for its first message. UNAVAILABLE before it
        is retried (nothing was consumed yet, so a fresh call is the same call), never past
        `timeout`, which bounds the whole call; after it, the caller decides. A call that runs
        something (PredictStream) passes idempotent=False and is not retried, as Predict is not.
        `started` gets each call as soon as it exists, so another thread can cancel it while
        this one waits for the first message. Raises LaunchError."""
        retries = self.retry_budget(timeout)
        while True:
            left = None if timeout is None else max(0.0, timeout - (time.monotonic() - retries.started))
            call = method(request, metadata=self._metadata, timeout=left)
            if started is not None:
                started(call)
            try:
                first = next(call)
            except StopIteration:
                return ServerStream(call, None)
            except grpc.RpcError as exc:
                if idempotent and retries.retry(exc):
                    continue
                raise from_rpc_error(exc) from None
            return ServerStream(call, first)

    def stream(self, method: Callable[..., Any], request: Any, *, timeout: float | None = None) -> Iterator[Any]:
        """Server-streaming call (a read: WatchTasks, DownloadResult); yields messages and raises
        LaunchError on failure, retrying as `open_stream` does."""
        opened = self.open_stream(method, request, timeout=timeout)
        if opened.first is None:
            return
        yield opened.first
        yield from opened.rest()

    def retry_budget(self, deadline_s: float | None = None) -> RetryBudget:
        """The retries one call may still make (deadline_s: the call's own time limit, if any)."""
        window = self.retry_window_s if deadline_s is None else min(self.retry_window_s, deadline_s)
        return RetryBudget(self.max_retries, window)


@dataclass
class ServerStream:
    """An open server-streaming call past its first message (None: it ended without one).
    `on_end` runs once when the stream is over for its reader (read to its end or failure, or
    cancelled): on a single-threaded channel (SingleThreadedUnaryStream) a cancelled call's own
    callbacks run only if someone reads on, so the end is noticed here instead."""

    call: Any
    first: Any
    on_end: Callable[[], None] | None = None
    _end_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def rest(self) -> Iterator[Any]:
        """The messages after the first; a failure (the call cancelled included) raises LaunchError."""
        try:
            yield from self.call
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        finally:
            self._ended()

    def cancel(self) -> None:
        """Ends the call from any thread; a reader in rest() then gets a LaunchError."""
        self.call.cancel()
        self._ended()

    def _ended(self) -> None:
        with self._end_lock:  # once, whichever thread (reader, closer) gets here first
            on_end, self.on_end = self.on_end, None
        if on_end is not None:
            on_end()


class RetryBudget:
    """One call's retries on UNAVAILABLE: at most max_retries, each after a jittered exponential
    backoff, and none whose wait would end more than window_s after the call started."""

    def __init__(self, max_retries: int, window_s: float) -> None:
        self.max_retries = max_retries
        self.window_s = window_s
        self.started = time.monotonic()
        self.attempt = 0

    def retry(self, error: grpc.RpcError) -> bool:
        """Waits and returns True when the failed attempt may be repeated; False otherwise."""
        if error.code() != grpc.StatusCode.UNAVAILABLE or self.attempt >= self.max_retries:
            return False
        delay = min(2.0, 0.1 * (2**self.attempt)) * (0.5 + random.random() / 2)
        if time.monotonic() + delay - self.started > self.window_s:
            return False
        time.sleep(delay)
        self.attempt += 1
        return True
