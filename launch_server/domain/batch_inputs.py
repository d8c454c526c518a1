"""A batch job's inputs from whichever source its request names: inline URLs, inline keyword
arguments (JSON objects), or a CSV file of URLs in storage (see url_csv).

Each source is capped before anything is built per input: an inline list's length is checked
before its entries are touched (a 64 MiB message can hold millions of tiny ones), and a file is
read as a stream that stops at the first row past the cap. The per-input work runs in worker
threads, so a large or hostile request never stalls the event loop, and only a few files are read
at once, which bounds the memory that the URLs kept from them can take."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from launch_server.domain.errors import InvalidArgument
from launch_server.domain.json_input import MAX_ARGS_JSON_BYTES, parse_json_object
from launch_server.domain.ports import ObjectStorage
from launch_server.domain.url_csv import FIELD as FILE_FIELD
from launch_server.domain.url_csv import MAX_FILE_BYTES, MAX_URL_CHARS, read_url_csv

MAX_INPUTS = 1_000_000
FILES_AT_ONCE = 2

Inputs = list[dict[str, object]]


def _check_count(count: int) -> None:
    if count > MAX_INPUTS:
        raise InvalidArgument("inputs", f"at most {MAX_INPUTS} inputs, got {count}")


def _url_inputs(urls: Sequence[str]) -> Inputs:
    for index, url in enumerate(urls):
        if not url or len(url) > MAX_URL_CHARS:
            raise InvalidArgument(f"urls[{index}]", f"must be 1 to {MAX_URL_CHARS} characters")
    return [{"url": url, "return_pickled": False} for url in urls]


def _args_inputs(texts: Sequence[str]) -> Inputs:
    inputs: Inputs = []
    for index, text in enumerate(texts):
        field = f"args.args_json[{index}]"
        parse_json_object(field, text, MAX_ARGS_JSON_BYTES, "a JSON object of keyword arguments")
        inputs.append({"args_json": text, "return_pickled": False})
    return inputs


class BatchInputs:
    """Turns a request's inputs into the job's input dicts, or refuses them with InvalidArgument."""

    def __init__(self, storage: ObjectStorage, files_at_once: int = FILES_AT_ONCE) -> None:
        self._storage = storage
        self._files = asyncio.Semaphore(files_at_once)

    async def from_urls(self, urls: Sequence[str]) -> Inputs:
        _check_count(len(urls))
        return await asyncio.to_thread(_url_inputs, urls)

    async def from_args(self, texts: Sequence[str]) -> Inputs:
        _check_count(len(texts))
        return await asyncio.to_thread(_args_inputs, texts)

    async def from_file(self, location: str) -> Inputs:
        """The URLs of a CSV file; `location` is the canonical one its reader was checked against."""
        async with self._files:
            return await asyncio.to_thread(self._read_file, location)

    def _read_file(self, location: str) -> Inputs:
        try:
            size = self._storage.size_of(location)
            if size > MAX_FILE_BYTES:
                raise InvalidArgument(FILE_FIELD, f"the input file is over {MAX_FILE_BYTES} bytes")
            urls = read_url_csv(self._storage.read_chunks(location), MAX_INPUTS)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise InvalidArgument(FILE_FIELD, f"no object at {location!r}") from None
        return [{"url": url, "return_pickled": False} for url in urls]
