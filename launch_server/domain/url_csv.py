"""The CSV file of URLs a batch job may name as its input_location, read as a stream.

The file is the client's and may be hostile, so it is never held whole: its bytes go through an
incremental UTF-8 decoder, each record through the csv module, and reading stops at the first
thing over a cap (more rows than a job takes, a row over MAX_ROW_CHARS, more bytes than
MAX_FILE_BYTES) or that is not proper CSV text (invalid UTF-8, a NUL, bad quoting, no single
'url' column). What stays in memory is the URLs kept so far, never the rest of the file, and a
refusal reads no further than the offending row. Blocking: the caller runs it in a worker thread.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator

from launch_server.domain.errors import InvalidArgument

FIELD = "input_location"
MAX_FILE_BYTES = 256 << 20
# A record (a row, with any quoted line breaks) longer than this is refused. It also bounds every
# field, below the csv module's own field_size_limit, which is process-wide and left alone.
MAX_ROW_CHARS = 64 << 10
MAX_URL_CHARS = 2048


class _ChunkStream(io.RawIOBase):
    """Storage chunks as a raw binary stream for io.TextIOWrapper to decode. It counts what it
    hands out, so an object that grew past the cap after its size was checked is still refused,
    and closing it closes the storage read (an S3 body is dropped, not drained)."""

    def __init__(self, chunks: Iterator[bytes], max_bytes: int) -> None:
        self._chunks = chunks
        self._max_bytes = max_bytes
        self._chunk = memoryview(b"")
        self._read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._chunk:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._read += len(chunk)
            if self._read > self._max_bytes:
                raise InvalidArgument(FIELD, f"the input file is over {self._max_bytes} bytes")
            self._chunk = memoryview(chunk)
        size = min(len(buffer), len(self._chunk))
        buffer[:size] = self._chunk[:size]
        self._chunk = self._chunk[size:]
        return size

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        super().close()


class _Lines:
    """The decoded text's physical lines for csv.reader, refusing a NUL and a record (the lines
    since the last reset) over MAX_ROW_CHARS. readline's limit keeps even a file with no line
    break from being read in one piece."""

    def __init__(self, text: io.TextIOWrapper) -> None:
        self._text = text
        self.number = 0  # physical lines handed out
        self.record_chars = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._text.readline(MAX_ROW_CHARS + 1)
        if not line:
            raise StopIteration
        self.number += 1
        self.record_chars += len(line)
        if self.record_chars > MAX_ROW_CHARS:
            raise InvalidArgument(FIELD, f"line {self.number}: a CSV row is over {MAX_ROW_CHARS} characters")
        if "\0" in line:
            raise InvalidArgument(FIELD, f"line {self.number}: holds a NUL character; a CSV file is text")
        return line


def read_url_csv(chunks: Iterable[bytes], max_rows: int) -> list[str]:
    """The non-empty values of the file's 'url' column, in order. Every row after the header
    counts against max_rows, blank ones included (they are skipped, as rows with an empty url
    are), so the time spent on a file is bounded too. Raises InvalidArgument on the first fault."""
    stream = io.BufferedReader(_ChunkStream(iter(chunks), MAX_FILE_BYTES))
    # utf-8-sig: a leading byte-order mark (spreadsheet exports write one) is not part of the header.
    with io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline="") as text:
        lines = _Lines(text)
        reader = csv.reader(lines, strict=True)
        try:
            return _urls(reader, lines, max_rows)
        except UnicodeDecodeError:
            # Decoding runs ahead of the lines handed out, so the bad bytes are somewhere after these.
            raise InvalidArgument(FIELD, f"is not UTF-8 text (invalid bytes after line {lines.number})") from None
        except csv.Error as exc:
            raise InvalidArgument(FIELD, f"line {lines.number}: is not proper CSV ({exc})") from None


def _urls(reader: Iterator[list[str]], lines: _Lines, max_rows: int) -> list[str]:
    header = next(reader, None)
    if header is None:
        raise InvalidArgument(FIELD, "the CSV file is empty; it needs a header row with a 'url' column")
    if header.count("url") != 1:
        raise InvalidArgument(FIELD, "the CSV file's header row needs exactly one 'url' column")
    column = header.index("url")
    lines.record_chars = 0
    urls: list[str] = []
    for rows, row in enumerate(reader, start=1):
        lines.record_chars = 0
        if rows > max_rows:
            raise InvalidArgument(FIELD, f"the CSV file holds more than {max_rows} rows, the most a batch job takes")
        url = row[column] if column < len(row) else ""
        if len(url) > MAX_URL_CHARS:
            raise InvalidArgument(FIELD, f"line {lines.number}: the url is over {MAX_URL_CHARS} characters")
        if url:
            urls.append(url)
    if not urls:
        raise InvalidArgument(FIELD, "the CSV file holds no urls")
    return urls
