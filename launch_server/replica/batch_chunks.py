"""Batch-job work inside a replica: running one chunk of inputs and assembling a job's results.
Both unpickle or pickle user values, which is why they run in replicas and never in the server.

A chunk's per-input outcomes ({"result": value} or {"error": text}, in input order) are written
to storage at its output_key, pickled or as JSON, and its answer's result is a JSON summary
{"succeeded", "failed", "location"}. Assembling reads each finished chunk's outcomes (or counts a
chunk that failed as a whole as that many failed inputs), writes the job's single results object
in the same form, and answers its location. The server's download and the SDK read these objects,
so their form is part of the contract."""

from __future__ import annotations

import json
from collections.abc import Callable
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


def _decode(data: bytes, fmt: str) -> list[dict[str, Any]]:
    return cloudpickle.loads(data) if fmt == PICKLE else json.loads(data)


class BatchChunkWork:
    """A batch job's two kinds of replica work. `call` is the runtime's predict call for one
    input (BundleRuntime.call): it answers the predict function's value and raises
    RequestFailure for a reason the caller can act on, anything else when user code fails."""

    def __init__(self, call: Callable[[InferenceRequest], Any], storage: ChunkStorage) -> None:
        self._call = call
        self._storage = storage

    def run_chunk(self, chunk: ChunkRequest) -> InferenceAnswer:
        """Runs every input, one failing only itself; never raises."""
        return answer_or_failure(self._run_chunk, chunk)

    def assemble(self, request: AssembleRequest) -> InferenceAnswer:
        """Writes the job's results object; never raises."""
        return answer_or_failure(self._assemble, request)

    def _run_chunk(self, chunk: ChunkRequest) -> InferenceAnswer:
        entries: list[dict[str, Any]] = []
        for item in chunk.items:
            try:
                value = self._call(item)
                if chunk.format == JSON:
                    json.dumps(value)  # fail this input, not the chunk, when a value is not JSON
                entries.append({"result": value})
            except Exception as exc:  # noqa: BLE001 - one bad input fails only itself
                entries.append({"error": reason_of(exc)})
        location = self._storage.put_bytes(chunk.output_key, _encode(entries, chunk.format))
        failed = sum(1 for e in entries if "error" in e)
        summary = {"succeeded": len(entries) - failed, "failed": failed, "location": location}
        return InferenceAnswer(result=json.dumps(summary))

    def _assemble(self, request: AssembleRequest) -> InferenceAnswer:
        entries: list[dict[str, Any]] = []
        for part in request.parts:
            if part.location:
                entries.extend(_decode(self._storage.read_bytes(part.location), request.format))
            else:
                entries.extend({"error": part.error} for _ in range(part.count))
        location = self._storage.put_bytes(request.output_key, _encode(entries, request.format))
        return InferenceAnswer(result=json.dumps({"count": len(entries)}), result_url=location)
