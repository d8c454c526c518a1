"""Runtime log capture and its chunk format (replica/log_capture.py, observability/log_chunks.py):
lines split per thread, long lines cut, a flood bounded and counted, and a malformed chunk
refused whole by the reader."""

from __future__ import annotations

import io
import json
import threading
import time

import pytest

from launch_server.observability import log_chunks
from launch_server.observability.log_chunks import (
    MAX_CHUNK_BYTES,
    MAX_LINE_CHARS,
    ChunkError,
    chunk_key,
    encode_chunk,
    parse_chunk,
    parse_key,
)
from launch_server.replica.log_capture import PARTIAL_FLUSH_S, LogCapture, _print, _Tee


def texts(capture: LogCapture, later: float = 0.0) -> list[tuple[str, str]]:
    lines, _ = capture.take(time.time() + later)
    return [(stream, text) for _, stream, text in lines]


def test_writes_become_lines_and_a_partial_line_waits_for_its_end() -> None:
    capture = LogCapture()
    capture.write("stdout", "a\nb")
    capture.write("stdout", "c\r\n\n")
    capture.write("stderr", "no newline")
    assert texts(capture) == [("stdout", "a"), ("stdout", "bc"), ("stdout", "")]
    assert texts(capture, later=PARTIAL_FLUSH_S) == [("stderr", "no newline")]  # it waited long enough
    assert texts(capture, later=PARTIAL_FLUSH_S) == []  # taken once
    capture.write("stderr", " 10%\r 20%\r")  # a progress bar
    assert texts(capture) == [("stderr", " 10%"), ("stderr", " 20%")]


def test_two_threads_printing_at_once_do_not_interleave_within_a_line() -> None:
    capture = LogCapture()
    start = threading.Barrier(2)

    def chatter(name: str) -> None:
        start.wait()
        for i in range(200):
            capture.write("stdout", f"{name}-{i}")
            capture.write("stdout", "\n")

    threads = [threading.Thread(target=chatter, args=(n,)) for n in ("x", "y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = [text for _, text in texts(capture)]
    assert sorted(got) == sorted([f"x-{i}" for i in range(200)] + [f"y-{i}" for i in range(200)])


def test_a_long_line_is_cut_and_a_flood_is_bounded_and_counted() -> None:
    capture = LogCapture()
    capture.add("stdout", "x" * (MAX_LINE_CHARS + 10))
    (line,) = texts(capture)
    assert len(line[1]) < MAX_LINE_CHARS + 100 and "line cut" in line[1]
    for _ in range(MAX_CHUNK_BYTES // 100 + 500):
        capture.add("stdout", "y" * 68)
    lines, dropped = capture.take()
    assert dropped > 0 and sum(len(text) + 32 for _, _, text in lines) <= MAX_CHUNK_BYTES
    assert capture.take() == ([], 0)


def test_a_failure_is_a_traceback_line() -> None:
    capture = LogCapture()
    capture.failure("Traceback ...\nValueError: boom\n")
    assert texts(capture) == [("traceback", "request failed: Traceback ...\nValueError: boom")]


def test_the_tee_writes_through_and_print_keeps_its_file() -> None:
    capture, original = LogCapture(), io.StringIO()
    tee = _Tee(original, capture, "stderr")
    _print("a", 1, sep="-", file=tee)
    _print("b", end="", file=tee, flush=True)
    assert original.getvalue() == "a-1\nb"
    assert texts(capture, later=PARTIAL_FLUSH_S) == [("stderr", "a-1"), ("stderr", "b")]
    assert tee.getvalue() == "a-1\nb"  # anything else is the wrapped stream's


def test_a_chunk_round_trips_with_its_dropped_count() -> None:
    value = encode_chunk([(100.0, "stdout", "hi"), (101.0, "log", "INFO m: x")], dropped=3, written=102.0)
    written, lines = parse_chunk(value, "r1")
    assert written == 102.0
    assert [(ln.stream, ln.text) for ln in lines][1:] == [("stdout", "hi"), ("log", "INFO m: x")]
    assert "3 lines dropped" in lines[0].text and {ln.replica for ln in lines} == {"r1"}


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(v=2),
        lambda d: d["lines"].append([1.0, "secret-stream", "x"]),
        lambda d: d["lines"].append([float("inf"), "stdout", "x"]),
        lambda d: d["lines"].append([1.0, "stdout", "x" * (MAX_LINE_CHARS + 100)]),
        lambda d: d["lines"].append([1.0, "stdout", 5]),
        lambda d: d.update(dropped=-1),
        lambda d: d.pop("written"),
    ],
)
def test_a_malformed_chunk_is_refused_whole(change) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(encode_chunk([(1.0, "stdout", "ok")], 0, 2.0))
    change(data)
    with pytest.raises(ChunkError):
        parse_chunk(json.dumps(data).encode(), "r1")
    with pytest.raises(ChunkError):
        parse_chunk(b"{" * 10, "r1")


def test_keys_name_app_replica_and_sequence() -> None:
    key = chunk_key("launch-e1", "abc123", 7)
    assert parse_key(key) == ("launch-e1", "abc123", 7)
    assert sorted([chunk_key("a", "r", 10), chunk_key("a", "r", 9)])[0] == chunk_key("a", "r", 9)
    for junk in (b"launch-e1/abc", b"launch-e1/abc/7", b"a/b/c/000000000001", b"a/b/00000000000x"):
        assert parse_key(junk) is None
    assert log_chunks.KEEP_CHUNKS * MAX_CHUNK_BYTES <= 4 << 20  # what the docs promise per replica


def test_sizes_count_the_chunks_bytes_so_wide_text_never_makes_a_chunk_the_reader_refuses() -> None:
    capture = LogCapture()
    for _ in range(400):
        capture.add("stdout", "模型" * 500)  # 1,000 characters, 3,000 UTF-8 bytes each
    lines, dropped = capture.take()
    assert dropped > 0
    value = encode_chunk(lines, dropped, 1.0)
    assert len(value) <= MAX_CHUNK_BYTES + 1024
    assert len(parse_chunk(value, "r1")[1]) == len(lines) + 1


def test_records_are_taken_without_a_root_handler() -> None:
    """basicConfig and Python's last-resort handler still work with capture installed."""
    import logging

    from launch_server.replica import log_capture

    capture = LogCapture()
    original = logging.Logger.callHandlers
    try:
        log_capture._take_records(capture)
        assert not any(type(h).__module__ == log_capture.__name__ for h in logging.getLogger().handlers)
        logger = logging.getLogger("model.test")
        logger.setLevel(logging.INFO)
        logger.info("hello %s", "there")
        logging.getLogger("ray.serve").warning("platform")
        logging.getLogger("botocore.x").warning("platform")
        assert texts(capture) == [("log", "INFO model.test: hello there")]
    finally:
        logging.Logger.callHandlers = original  # type: ignore[method-assign]
