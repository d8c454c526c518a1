"""An endpoint's runtime logs: what its replicas' user code printed and logged, and the tracebacks
of its failed requests (ModelEndpointService.StreamModelEndpointLogs), as EndpointLogLine values.

A generator over one server-streaming call: with follow, it yields new lines as they arrive and
the call stays open until the caller stops iterating (break, close(), or garbage collection),
which cancels it, so a follower that goes away costs the server nothing more."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from launch.v1 import model_endpoint_pb2 as epb

if TYPE_CHECKING:
    from .connection import Connection

STREAMS = {
    epb.LOG_STREAM_STDOUT: "stdout",
    epb.LOG_STREAM_STDERR: "stderr",
    epb.LOG_STREAM_LOGGING: "logging",
    epb.LOG_STREAM_TRACEBACK: "traceback",
}
MAX_SINCE_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class EndpointLogLine:
    """One line (or logging record, or traceback) a replica wrote. `stream`: "stdout", "stderr",
    "logging" or "traceback"; `time` is timezone-aware UTC."""

    time: datetime
    replica: str
    stream: str
    text: str

    @classmethod
    def from_proto(cls, message: epb.EndpointLogLine) -> EndpointLogLine:
        return cls(
            time=message.time.ToDatetime(tzinfo=UTC),
            replica=message.replica,
            stream=STREAMS.get(message.stream, "stdout"),
            text=message.text,
        )


def stream_endpoint_logs(
    connection: Connection, name: str, since_seconds: float | None, follow: bool
) -> Iterator[EndpointLogLine]:
    """Checks the arguments now (not on the first next()) and returns the lines' generator."""
    if since_seconds is not None and not (math.isfinite(since_seconds) and 0 <= since_seconds <= MAX_SINCE_SECONDS):
        raise ValueError(f"since_seconds must be between 0 and {MAX_SINCE_SECONDS} (7 days)")
    return _lines(connection, name, since_seconds, follow)


def _lines(connection: Connection, name: str, since_seconds: float | None, follow: bool) -> Iterator[EndpointLogLine]:
    request = epb.StreamModelEndpointLogsRequest(name=name, since_seconds=since_seconds or 0.0, follow=follow)
    # A follow has no deadline: it lasts until the caller stops reading.
    opened = connection.open_stream(
        connection.endpoints.StreamModelEndpointLogs, request, timeout=None if follow else connection.timeout
    )
    try:
        if opened.first is None:
            return
        for line in opened.first.lines:
            yield EndpointLogLine.from_proto(line)
        for message in opened.rest():
            for line in message.lines:
                yield EndpointLogLine.from_proto(line)
    finally:
        opened.cancel()
