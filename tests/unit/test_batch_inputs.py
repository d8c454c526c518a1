"""A batch job's inputs (domain/batch_inputs.py, domain/url_csv.py): the CSV file of URLs is read
as a stream that stops at the first fault, and inline lists are capped before their entries are
touched. Files live in a real LocalStorage; the byte streams here count what was pulled from them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from launch_server.domain.batch_inputs import MAX_INPUTS, BatchInputs
from launch_server.domain.errors import InvalidArgument
from launch_server.domain.url_csv import MAX_FILE_BYTES, MAX_ROW_CHARS, read_url_csv
from launch_server.storage.local import LocalStorage


class Source:
    """An iterator of chunks that records how many bytes were pulled and whether it was closed."""

    def __init__(self, head: bytes, body: bytes, repeat: int) -> None:
        self._chunks = iter([head, *([body] * repeat)])
        self.pulled = 0
        self.closed = False
        self.total = len(head) + len(body) * repeat

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        chunk = next(self._chunks)
        self.pulled += len(chunk)
        return chunk

    def close(self) -> None:
        self.closed = True


def refused(data: bytes | Source, max_rows: int = 100) -> str:
    with pytest.raises(InvalidArgument) as err:
        read_url_csv([data] if isinstance(data, bytes) else data, max_rows)
    assert err.value.field == "input_location"
    return err.value.description


def test_a_proper_csv_gives_its_urls_in_order() -> None:
    data = b'\xef\xbb\xbfid,url,note\r\n1,http://a/1,x\r\n\r\n2,,empty\r\n3,"http://a/3?q=1,2",\r\n4\r\n5,http://a/5\n'
    assert read_url_csv([data[:7], data[7:30], data[30:]], 100) == ["http://a/1", "http://a/3?q=1,2", "http://a/5"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "is empty"),
        (b"name\nhttp://a\n", "exactly one 'url' column"),
        (b"url,url\nhttp://a,http://b\n", "exactly one 'url' column"),
        (b"url\n,\n\n", "holds no urls"),
        (b"url\nhttp://a\x00b\n", "line 2: holds a NUL character"),
        (b"url\nhttp://a\nhttp://\xff\xfe/\n", "is not UTF-8 text"),
        (b'url\n"http://a"b\n', "is not proper CSV"),
        (b'url\n"http://a\n', "is not proper CSV"),
        (b"url\nhttp://" + b"h" * 2100 + b"\n", "line 2: the url is over 2048 characters"),
    ],
)
def test_a_file_that_is_not_a_proper_url_csv_is_refused(data: bytes, message: str) -> None:
    assert message in refused(data)


def test_a_line_without_end_is_refused_after_one_row_of_reading() -> None:
    source = Source(b"url\n", b"x" * (1 << 20), 250)
    assert "a CSV row is over" in refused(source)
    assert source.pulled <= 2 << 20 < source.total and source.closed


def test_a_row_of_many_quoted_lines_is_refused_at_the_row_cap() -> None:
    source = Source(b'url\n"', b"a\n" * (1 << 16), 100)
    assert "line " in refused(source) and source.pulled <= MAX_ROW_CHARS * 4 and source.closed


def test_rows_past_the_cap_are_refused_without_reading_the_rest() -> None:
    # 11 rows against a cap of 10, then megabytes that would be refused otherwise (not UTF-8).
    source = Source(b"url\n" + b"http://a\n" * 11 + b"\n" * 9000, b"\xff" * (1 << 20), 100)
    assert "more than 10 rows" in refused(source, max_rows=10)
    assert source.pulled < 2 << 20 and source.closed
    assert read_url_csv([b"url\n" + b"http://a\n" * 10], 10) == ["http://a"] * 10


def test_blank_rows_count_against_the_cap() -> None:
    assert "more than 10 rows" in refused(b"url\nhttp://a\n" + b"\n" * 10, max_rows=10)


def test_an_object_that_grows_past_the_byte_cap_while_read_is_refused() -> None:
    line = b"http://" + b"a" * 1016 + b"\n"  # 1 KiB rows, so the cap is reached in few of them
    source = Source(b"url\n", line * 1024, MAX_FILE_BYTES // (1 << 20) + 2)
    assert "over 268435456 bytes" in refused(source, max_rows=10**9)
    assert source.closed


def test_files_in_storage(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "storage")
    inputs = BatchInputs(storage)
    good = tmp_path / "storage" / "in.csv"
    good.write_bytes(b"url\nhttp://a\nhttp://b\n")
    result = asyncio.run(inputs.from_file(good.as_uri()))
    assert result == [{"url": "http://a", "return_pickled": False}, {"url": "http://b", "return_pickled": False}]
    for missing in (tmp_path / "storage" / "nope.csv", tmp_path / "storage"):
        with pytest.raises(InvalidArgument, match="no object at") as err:
            asyncio.run(inputs.from_file(missing.as_uri()))
        assert err.value.field == "input_location"
    big = tmp_path / "storage" / "big.csv"
    with open(big, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(InvalidArgument, match="over 268435456 bytes"):
        asyncio.run(inputs.from_file(big.as_uri()))


class Untouchable(list):
    """A long list whose entries must not be read (only its length)."""

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("entries were read before the count was checked")

    __getitem__ = __iter__  # type: ignore[assignment]


def test_inline_lists_are_capped_before_their_entries_are_read(tmp_path: Path) -> None:
    inputs = BatchInputs(LocalStorage(tmp_path))
    too_many = Untouchable(["x"] * (MAX_INPUTS + 1))
    for method in (inputs.from_urls, inputs.from_args):
        with pytest.raises(InvalidArgument, match="at most 1000000 inputs") as err:
            asyncio.run(method(too_many))
        assert err.value.field == "inputs"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (['{"x": 1}', "[" * 100_000], "args.args_json[1]"),
        (['{"x": ' + "1" * 5000 + "}"], "args.args_json[0]"),
        (["[1]"], "args.args_json[0]"),
    ],
)
def test_inline_args_that_are_not_json_objects_are_refused(tmp_path: Path, args: list[str], field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        asyncio.run(BatchInputs(LocalStorage(tmp_path)).from_args(args))
    assert err.value.field == field


def test_inline_urls(tmp_path: Path) -> None:
    inputs = BatchInputs(LocalStorage(tmp_path))
    assert asyncio.run(inputs.from_urls(["http://a"])) == [{"url": "http://a", "return_pickled": False}]
    with pytest.raises(InvalidArgument) as err:
        asyncio.run(inputs.from_urls(["http://a", ""]))
    assert err.value.field == "urls[1]"
