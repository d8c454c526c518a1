"""The format runtime log lines travel in from a replica to the servers (replica/log_capture.py
writes them, serving/runtime_logs.py reads them): append-only chunks in Ray's GCS key-value store,
under `{app}/{replica id}/{sequence}` in LOGS_NAMESPACE.

Why chunks and not one document per replica: a replica that prints a lot would rewrite its whole
history every publish; a chunk carries only the lines since the last one, so the GCS sees the
log's own rate, capped at MAX_CHUNK_BYTES per publish. A replica keeps its last KEEP_CHUNKS chunks
(older ones it deletes itself); the servers delete the chunks of replicas gone for RETAIN_S and an
endpoint's all when it is deleted, so what the GCS holds is bounded per replica and in time.

A chunk is JSON; the reader refuses a malformed one whole, and every field is bounded, since a
replica runs user code that could write anything into the namespace."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

LOGS_NAMESPACE = "launch_logs"
CHUNK_VERSION = 1
# Where a line came from: the user code's stdout or stderr, a `logging` record, or the traceback
# of a request that failed.
STREAMS = ("stdout", "stderr", "log", "traceback")
MAX_LINE_CHARS = 16 << 10  # a longer line is cut, with a note saying so
MAX_CHUNK_BYTES = 256 << 10  # lines past this in one publish interval are dropped, and counted
KEEP_CHUNKS = 16  # per replica: about the last 4 MiB of output at the most
RETAIN_S = 3600.0  # a replica's chunks outlive it by this much
SEQUENCE_DIGITS = 12


@dataclass(frozen=True)
class LogLine:
    """One line a replica's user code wrote, with when (Unix seconds) and where."""

    time: float
    replica: str
    stream: str
    text: str


def chunk_key(app_name: str, replica_id: str, sequence: int) -> bytes:
    return f"{app_name}/{replica_id}/{sequence:0{SEQUENCE_DIGITS}d}".encode()


def parse_key(key: bytes) -> tuple[str, str, int] | None:
    """(app, replica id, sequence) of a chunk key, or None for anything else."""
    parts = key.decode(errors="replace").split("/")
    if len(parts) != 3 or not parts[2].isdigit() or len(parts[2]) != SEQUENCE_DIGITS:
        return None
    return parts[0], parts[1], int(parts[2])


def encode_chunk(lines: list[tuple[float, str, str]], dropped: int, written: float) -> bytes:
    """A chunk of (time, stream, text) lines; `dropped` lines were lost before it (over the
    per-publish bound)."""
    return json.dumps(
        {"v": CHUNK_VERSION, "written": written, "dropped": dropped, "lines": [list(line) for line in lines]},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


class ChunkError(ValueError):
    """A chunk that does not have the documented shape; the reader skips it whole."""


def _time(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ChunkError(f"not a time: {value!r}")
    return float(value)


def parse_chunk(value: bytes, replica_id: str) -> tuple[float, list[LogLine]]:
    """(when it was written, its lines) from a stored chunk; ChunkError when any part of it is
    not what encode_chunk writes. A `dropped` count becomes a line of its own, first."""
    if len(value) > 2 * MAX_CHUNK_BYTES:
        raise ChunkError("a chunk over the size bound")
    try:
        data = json.loads(value)
        if not isinstance(data, dict) or data.get("v") != CHUNK_VERSION:
            raise ChunkError("not a version-1 chunk")
        written = _time(data["written"])
        dropped = data["dropped"]
        if not isinstance(dropped, int) or isinstance(dropped, bool) or dropped < 0:
            raise ChunkError(f"not a count: {dropped!r}")
        lines = []
        if dropped:
            note = f"[launch: {dropped} lines dropped: over the rate bound]"
            lines.append(LogLine(written, replica_id, "stderr", note))
        for at, stream, text in data["lines"]:
            if stream not in STREAMS or not isinstance(text, str) or len(text) > MAX_LINE_CHARS + 64:
                raise ChunkError("a line of the wrong shape")
            lines.append(LogLine(_time(at), replica_id, stream, text))
        return written, lines
    except ChunkError:
        raise
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise ChunkError(f"malformed chunk: {exc}") from None
