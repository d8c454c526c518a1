"""Connection's one stream path: UNAVAILABLE before the first message is retried (the task
stream's submit included, with the same request_id), after it is not; a gRPC-made UNIMPLEMENTED
is told apart from launch-server's."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from launch.connection import Connection
from launch.errors import UnavailableError
from launch.task_stream import create_and_watch
from launch.v1 import inference_pb2 as ipb
from launch.v1 import task_pb2 as tpb


class Failure(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, trailers: tuple[tuple[str, bytes], ...] = ()) -> None:
        self._code, self._trailers = code, trailers

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._code.name

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return self._trailers


class Call:
    """A server-streaming call that fails with `error` after yielding `messages`."""

    def __init__(self, messages: list[Any], error: grpc.RpcError | None = None) -> None:
        self._messages, self._error = iter(messages), error

    def __iter__(self) -> Call:
        return self

    def __next__(self) -> Any:
        for message in self._messages:
            return message
        if self._error is not None:
            raise self._error
        raise StopIteration

    def cancel(self) -> None:
        pass


def connection() -> Connection:
    return Connection(api_key="launch_key_x", endpoint="127.0.0.1:1", retry_window_s=5)


def test_unavailable_before_the_first_message_is_retried_with_the_same_request() -> None:
    seen: list[Any] = []
    calls = iter([Call([], Failure(grpc.StatusCode.UNAVAILABLE)), Call([1, 2])])

    def method(request: Any, *, metadata: Any, timeout: float | None) -> Call:
        seen.append(request)
        return next(calls)

    assert list(connection().stream(method, "r", timeout=5)) == [1, 2]
    assert seen == ["r", "r"]


def test_unavailable_after_the_first_message_is_the_callers() -> None:
    def method(request: Any, *, metadata: Any, timeout: float | None) -> Call:
        return Call([1], Failure(grpc.StatusCode.UNAVAILABLE))

    got: list[Any] = []
    with pytest.raises(UnavailableError):
        got.extend(connection().stream(method, "r", timeout=5))
    assert got == [1]


def test_create_and_watch_retries_with_one_request_id_and_spots_an_older_server() -> None:
    conn = connection()
    task = tpb.Task(task_id="t1", state=ipb.RESULT_STATE_PENDING)
    requests: list[tpb.CreateAndWatchTaskRequest] = []
    calls = iter([Call([], Failure(grpc.StatusCode.UNAVAILABLE)), Call([tpb.CreateAndWatchTaskResponse(task=task)])])

    def method(request: Any, *, metadata: Any, timeout: float | None) -> Call:
        requests.append(request)
        return next(calls)

    conn.tasks = type("Stub", (), {"CreateAndWatchTask": staticmethod(method)})()  # type: ignore[assignment]
    stream = create_and_watch(conn, "ep", tpb.TaskSpec())
    assert stream is not None and stream.latest.task_id == "t1"
    assert len(requests) == 2 and requests[0].request_id == requests[1].request_id

    def unimplemented(request: Any, *, metadata: Any, timeout: float | None) -> Call:
        return Call([], Failure(grpc.StatusCode.UNIMPLEMENTED))

    conn.tasks = type("Stub", (), {"CreateAndWatchTask": staticmethod(unimplemented)})()  # type: ignore[assignment]
    assert create_and_watch(conn, "ep", tpb.TaskSpec()) is None
