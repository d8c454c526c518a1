"""PredictStream: one streaming request's results, read from its gRPC call as they arrive.

The call starts on the first next(), not before, so building the iterator costs nothing and an
error the server answers at once (return_pickled refused, a non-streaming endpoint) is raised
there, as the SDK's LaunchError for its status. Each result is handed over as soon as its message
arrives (a message may carry several, `more`: values that were waiting when the replica sent it);
the next message is read only once those are taken, so a slow reader slows the replica's generator
(gRPC flow control) instead of filling this process's memory. The call is started at most once: an error or the end
of the stream ends the iterator for good, since a second call would run the request again.

Stopping early (close(), leaving a `with` block, break in a for loop over a dropped iterator,
garbage collection) cancels the call, which closes the generator in the replica."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from launch.v1 import inference_pb2 as ipb

from .connection import ServerStream
from .errors import LaunchError


class PredictStream:
    """An iterator of ipb.InferenceResult; thread-safe close(). `open_stream` starts the call,
    hands it to the callable it is given as soon as it exists (so close() can cancel a call still
    waiting for its first message), and returns it past its first message (raising LaunchError
    when it fails before one)."""

    def __init__(self, open_stream: Callable[[Callable[[Any], None]], ServerStream]) -> None:
        self._open_stream = open_stream
        self._call: Any = None  # the call being opened, before its first message
        self._stream: ServerStream | None = None
        self._messages: Iterator[Any] | None = None
        self._waiting: deque[ipb.InferenceResult] = deque()  # the rest of the last message
        self._closed = False
        self._lock = threading.Lock()

    def __iter__(self) -> PredictStream:
        return self

    def __next__(self) -> ipb.InferenceResult:
        if self._closed:
            raise StopIteration
        if self._waiting:
            return self._handed(self._waiting.popleft())
        if self._messages is None:
            self._messages = self._start()
        try:
            message = next(self._messages)
        except StopIteration:
            self.close()
            raise
        except LaunchError:
            closed = self._closed  # closed by the caller: the cancellation is the end, not an error
            self.close()
            if closed:
                raise StopIteration from None
            raise
        self._waiting.extend(message.more)
        return self._handed(message.result)

    def _handed(self, result: ipb.InferenceResult) -> ipb.InferenceResult:
        if result.state == ipb.RESULT_STATE_FAILURE:
            self._waiting.clear()
            self.close()  # a failure is the stream's last result
        return result

    def _start(self) -> Iterator[Any]:
        try:
            stream = self._open_stream(self._call_started)
        except LaunchError:
            with self._lock:
                closed, self._closed = self._closed, True  # never started again: that would run it twice
            if closed:  # closed by the caller while waiting for the first message: that is the end
                raise StopIteration from None
            raise
        except BaseException:
            self._closed = True
            raise
        with self._lock:
            self._stream = stream
            self._call = None
            closed = self._closed
        if closed:  # closed from another thread while the call was being opened: that is the end
            stream.cancel()
            raise StopIteration
        return _messages(stream)

    def _call_started(self, call: Any) -> None:
        with self._lock:
            self._call = call
            closed = self._closed
        if closed:
            call.cancel()

    def close(self) -> None:
        """Ends the stream and cancels its call; from any thread, any number of times, also
        while the call still waits for its first message. A reader blocked in next() on another
        thread then sees the end of the stream."""
        with self._lock:
            self._closed = True
            stream, call = self._stream, self._call
        if stream is not None:
            stream.cancel()
        elif call is not None:
            call.cancel()

    def __enter__(self) -> PredictStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def _messages(stream: ServerStream) -> Iterator[Any]:
    if stream.first is None:
        return
    yield stream.first
    yield from stream.rest()
