"""Batch-job work inside a replica: running one chunk of inputs and assembling a job's results.
Both unpickle or pickle user values, which is why they run in replicas and never in the server.

A chunk's per-input outcomes ({"result": value} or {"error": text}, in input order) are written
to storage at its output_key, pickled or as JSON, and its answer's result is a JSON summary
{"succeeded", "failed", "location"}. Assembling reads each finished chunk's outcomes (or counts a
chunk that failed as a whole as that many failed inputs), writes the job's single results object
in the same form, and answers its location. The server's download and the SDK read these objects,
so their form is part of the contract.

A batch function (replica/batching.py) gets a chunk's inputs in slices of its max batch size:
an input that cannot be decoded fails only itself, and a slice whose call raises (or answers the
wrong number of results) fails each input of that slice with the reason."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import cloudpickle

from launch_server.domain.requests import AssembleRequest, ChunkRequest, InferenceAnswer, InferenceRequest
from launch_server.replica.failures import answer_or_failure, reason_of

PICKLE = "pickle"
JSON = "json"


class ChunkStorage(Protocol):
    """The two storage operations chunk work needs (storage/local.py and storage/s3.py)."""

    def put_bytes(self, key: str, data: bytes) -> str: ...

    def read_bytes(self, location: str) -> bytes: ...


def _encode(entries: list[dict[str, Any]], fmt: str) -> bytes:
    if fmt == PICKLE:
        return cloudpickle.dumps(entries)
    return json.dumps(entries).encode()


def _entry(value: Any, fmt: str) -> dict[str, Any]:
    """One input's outcome; a value that is not JSON fails this input, not the chunk."""
    if fmt == JSON:
        try:
            json.dumps(value)
        except Exception as exc:  # noqa: BLE001 - TypeError, ValueError, RecursionError: this input's fault
            return {"error": f"the result is not JSON-serializable: {type(exc).__name__}: {exc}"}
    return {"result": value}


def _slice(slices: SliceCall, items: list[InferenceRequest], fmt: str) -> list[dict[str, Any]]:
    """One slice's outcomes, in order: an input that cannot be decoded fails before the call, a
    call that raises fails every input it was given."""
    entries: list[dict[str, Any]] = [{}] * len(items)
    inputs: list[Any] = []
    decoded: list[int] = []
    for index, item in enumerate(items):
        try:
            inputs.append(slices.decode(item))
            decoded.append(index)
        except Exception as exc:  # noqa: BLE001 - a bad input fails only itself, before the call
            entries[index] = {"error": reason_of(exc)}
    if decoded:
        try:
            values = slices.call(inputs)
        except Exception as exc:  # noqa: BLE001 - the slice's call failed: each of its inputs did
            why = reason_of(exc)
            for index in decoded:
                entries[index] = {"error": why}
        else:
            for index, value in zip(decoded, values, strict=True):
                entries[index] = _entry(value, fmt)
    return entries


def _decode(data: bytes, fmt: str) -> list[dict[str, Any]]:
    return cloudpickle.loads(data) if fmt == PICKLE else json.loads(data)


@dataclass(frozen=True)
class SliceCall:
    """How a batch function takes a chunk (BundleRuntime.batch_input and call_batch): each
    input decoded on its own, then `size` of them per call."""

    decode: Callable[[InferenceRequest], Any]
    call: Callable[[list[Any]], list[Any]]
    size: int


class BatchChunkWork:
    """A batch job's two kinds of replica work. `call` is the runtime's predict call for one
    input (BundleRuntime.call): it answers the predict function's value and raises
    RequestFailure for a reason the caller can act on, anything else when user code fails.
    With `slices`, inputs go to a batch function that many at a time instead."""

    def __init__(
        self, call: Callable[[InferenceRequest], Any], storage: ChunkStorage, slices: SliceCall | None = None
    ) -> None:
        self._call = call
        self._storage = storage
        self._slices = slices

    def run_chunk(self, chunk: ChunkRequest) -> InferenceAnswer:
        """Runs every input, one failing only itself; never raises."""
        return answer_or_failure(self._run_chunk, chunk)

    def assemble(self, request: AssembleRequest) -> InferenceAnswer:
        """Writes the job's results object; never raises."""
        return answer_or_failure(self._assemble, request)

    def _run_chunk(self, chunk: ChunkRequest) -> InferenceAnswer:
        slices = self._slices
        if slices is None:
            entries = [self._one(item, chunk.format) for item in chunk.items]
        else:
            entries = []
            items = list(chunk.items)
            for start in range(0, len(items), slices.size):
                entries.extend(_slice(slices, items[start : start + slices.size], chunk.format))
        location = self._storage.put_bytes(chunk.output_key, _encode(entries, chunk.format))
        failed = sum(1 for e in entries if "error" in e)
        summary = {"succeeded": len(entries) - failed, "failed": failed, "location": location}
        return InferenceAnswer(result=json.dumps(summary))

    def _one(self, item: InferenceRequest, fmt: str) -> dict[str, Any]:
        try:
            return _entry(self._call(item), fmt)
        except Exception as exc:  # noqa: BLE001 - one bad input fails only itself
            return {"error": reason_of(exc)}

    def _assemble(self, request: AssembleRequest) -> InferenceAnswer:
        entries: list[dict[str, Any]] = []
        for part in request.parts:
            if part.location:
                entries.extend(_decode(self._storage.read_bytes(part.location), request.format))
            else:
                entries.extend({"error": part.error} for _ in range(part.count))
        location = self._storage.put_bytes(request.output_key, _encode(entries, request.format))
        return InferenceAnswer(result=json.dumps({"count": len(entries)}), result_url=location)
