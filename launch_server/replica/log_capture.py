"""What a replica's user code prints and logs, kept for its owner (`launch endpoints logs`).

A replica process holds one replica (a Ray actor), so capture is process-wide, like FIGURES:
sys.stdout and sys.stderr are wrapped so every write still reaches the stream it went to (Ray's
worker log) and is also split into lines here; the records of the user's loggers (not Ray's, not
Launch's own, not the storage and RPC libraries' chatter) are taken as logging dispatches them;
and a request that fails adds its traceback (replica/failures.py). Lines wait here until the
reporter (logs_reporter.py) takes them, at most MAX_CHUNK_BYTES of them (as the chunk's JSON will
hold them) per take: past that they are counted as dropped, so a function that prints in a tight
loop costs bounded memory and GCS writes.

Why records are taken by wrapping Logger.callHandlers and not by a handler on the root logger: a
root handler would stop Python's last-resort handler (a user's warning would no longer reach
stderr and the replica's log) and make a user's logging.basicConfig a no-op. The wrapper sees
every record a logger lets through, before and whatever its handlers do.

Output written to file descriptors 1 and 2 directly (a C extension's printf, a subprocess) does
not pass through sys.stdout and is not captured; it is still in Ray's worker log."""

from __future__ import annotations

import builtins
import json
import logging
import sys
import threading
import time
from typing import Any, TextIO

from launch_server.observability.log_chunks import MAX_CHUNK_BYTES, MAX_LINE_CHARS

PARTIAL_FLUSH_S = 2.0  # a line without its newline yet is taken as it is once it waited this long
# Loggers whose records are the platform's, not the user's.
PLATFORM_LOGGERS = ("ray", "launch_server", "botocore", "boto3", "s3transfer", "urllib3", "grpc", "asyncio", "filelock")
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def _json_size(text: str) -> int:
    """What the line costs in a chunk (log_chunks.encode_chunk): its JSON text in UTF-8, plus
    the time and stream around it."""
    return len(json.dumps(text, ensure_ascii=False).encode()) + 32


def _cut(text: str) -> str:
    if len(text) <= MAX_LINE_CHARS:
        return text
    return f"{text[:MAX_LINE_CHARS]} [launch: line cut at {MAX_LINE_CHARS:,} of {len(text):,} characters]"


class LogCapture:
    """Lines waiting to be published, safe to add to from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: list[tuple[float, str, str]] = []
        self._bytes = 0
        self._dropped = 0
        # (stream, thread) -> (when it began, text not yet ended by a newline)
        self._partial: dict[tuple[str, int], tuple[float, str]] = {}
        self.installed = False

    def add(self, stream: str, text: str, at: float | None = None) -> None:
        """One whole line (or one logging record, or one traceback, newlines and all)."""
        text = _cut(text)
        size = _json_size(text)
        with self._lock:
            if self._bytes + size > MAX_CHUNK_BYTES:
                self._dropped += 1
                return
            self._bytes += size
            self._lines.append((time.time() if at is None else at, stream, text))

    def write(self, stream: str, text: str) -> None:
        """Text as a stream's write() got it: whole lines are added, the rest waits for the rest
        of its line, per thread, so two threads printing at once do not interleave mid-line. A
        carriage return ends a line too (a progress bar's updates become lines of their own)."""
        key = (stream, threading.get_ident())
        now = time.time()
        with self._lock:
            began, pending = self._partial.pop(key, (now, ""))
            *whole, rest = (pending + text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
            if rest:
                self._partial[key] = (began if not whole else now, rest[: MAX_LINE_CHARS + 1])
        for line in whole:
            self.add(stream, line)

    def failure(self, reason: str) -> None:
        """A failed request's traceback (or reason), as its answer carries it."""
        self.add("traceback", f"request failed: {reason.rstrip()}")

    def take(self, now: float | None = None) -> tuple[list[tuple[float, str, str]], int]:
        """The lines waiting and how many were dropped since the last take; a line still without
        its newline after PARTIAL_FLUSH_S is taken as it is (a print without one would otherwise
        never show)."""
        now = time.time() if now is None else now
        with self._lock:
            stale = {key: value for key, value in self._partial.items() if now - value[0] >= PARTIAL_FLUSH_S}
            for key in stale:
                del self._partial[key]
        for (stream, _), (_, text) in stale.items():
            self.add(stream, text)
        with self._lock:
            lines, dropped = self._lines, self._dropped
            self._lines, self._bytes, self._dropped = [], 0, 0
        return lines, dropped

    def install(self) -> None:
        """Wraps sys.stdout and sys.stderr and hooks the root logger (once per process)."""
        if self.installed:
            return
        self.installed = True
        # Serve's replicas send print() straight to Serve's own logger (so it reaches the
        # replica's log file), bypassing sys.stdout and losing which stream it was for; print
        # writes to its file again, and the streams below still carry it on to Serve's log.
        builtins.print = _print
        sys.stdout = _Tee(sys.stdout, self, "stdout")  # type: ignore[assignment]
        sys.stderr = _Tee(sys.stderr, self, "stderr")  # type: ignore[assignment]
        _take_records(self)
        root = logging.getLogger()
        if root.level > logging.INFO:  # Python's default (WARNING): a user's logger.info shows too
            root.setLevel(logging.INFO)


def _print(
    *objects: object, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False
) -> None:
    """Python's print, as Serve's replicas replace it (see install)."""
    stream = sys.stdout if file is None else file
    if stream is None:  # no stream at all (pythonw): print does nothing either
        return
    stream.write((" " if sep is None else sep).join(map(str, objects)) + ("\n" if end is None else end))
    if flush:
        stream.flush()


class _Tee:
    """A text stream that also hands what is written to the capture; anything else (fileno,
    encoding, isatty, buffer) is the wrapped stream's."""

    def __init__(self, original: TextIO, capture: LogCapture, stream: str) -> None:
        self._original = original
        self._capture = capture
        self._stream = stream

    def write(self, text: str) -> int:
        written = self._original.write(text)
        try:
            self._capture.write(self._stream, text)
        except Exception:  # noqa: BLE001, S110 - a print must never fail because of the capture
            pass
        return written

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._original.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


def _take_records(capture: LogCapture) -> None:
    """Wraps Logger.callHandlers (see the module doc) so every record a user's logger lets
    through is also added, formatted LOG_FORMAT; logging goes on as it would have."""
    formatter = logging.Formatter(LOG_FORMAT)
    call_handlers = logging.Logger.callHandlers

    def calling_handlers(self: logging.Logger, record: logging.LogRecord) -> None:
        if record.name.split(".", 1)[0] not in PLATFORM_LOGGERS:
            try:
                capture.add("log", formatter.format(record), at=record.created)
            except Exception:  # noqa: BLE001, S110 - logging must never fail the caller
                pass
        call_handlers(self, record)

    logging.Logger.callHandlers = calling_handlers  # type: ignore[method-assign]


CAPTURE = LogCapture()
