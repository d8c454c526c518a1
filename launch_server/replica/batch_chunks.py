"""Batch-job work inside a replica: running one chunk of inputs and assembling a job's results.
Both unpickle or pickle user values, which is why they run in replicas and never in the server.

A chunk request is {"chunk": [request, ...], "format": "json"|"pickle", "output_key": key}; its
per-input outcomes ({"result": value} or {"error": text}, in input order) are written to storage
at output_key, and the answer's result is a JSON summary {"succeeded", "failed", "location"}.
An assemble request is {"assemble": [part, ...], "format": ..., "output_key": key}, where each
part is {"location": url} for a finished chunk or {"error": text, "count": n} for a chunk that
failed as a whole; it writes the job's single results object and answers its location."""

from __future__ import annotations

import json
import traceback
from typing import TYPE_CHECKING, Any

import cloudpickle

if TYPE_CHECKING:
    from launch_server.replica.bundle_runtime import BundleRuntime


def _encode(entries: list[dict[str, Any]], fmt: str) -> bytes:
    if fmt == "pickle":
        return cloudpickle.dumps(entries)
    return json.dumps(entries).encode()


def _decode(data: bytes, fmt: str) -> list[dict[str, Any]]:
    return cloudpickle.loads(data) if fmt == "pickle" else json.loads(data)


def run_chunk(runtime: BundleRuntime, request: dict[str, Any]) -> dict[str, Any]:
    fmt = request.get("format", "json")
    entries: list[dict[str, Any]] = []
    for item in request["chunk"]:
        try:
            value = runtime._call(item)  # noqa: SLF001 - same replica, same rules as predict
            if fmt == "json":
                json.dumps(value)  # fail this input, not the chunk, when a value is not JSON
            entries.append({"result": value})
        except Exception as exc:  # noqa: BLE001 - one bad input fails only itself
            detail = str(exc) if type(exc).__name__ == "_RequestFailure" else traceback.format_exc()
            entries.append({"error": detail})
    location = runtime.storage.put_bytes(request["output_key"], _encode(entries, fmt))
    failed = sum(1 for e in entries if "error" in e)
    summary = {"succeeded": len(entries) - failed, "failed": failed, "location": location}
    return {"state": "SUCCESS", "result": json.dumps(summary), "result_url": "", "traceback": ""}


def assemble(runtime: BundleRuntime, request: dict[str, Any]) -> dict[str, Any]:
    fmt = request.get("format", "json")
    entries: list[dict[str, Any]] = []
    for part in request["assemble"]:
        if "location" in part:
            entries.extend(_decode(runtime.storage.read_bytes(part["location"]), fmt))
        else:
            entries.extend({"error": part["error"]} for _ in range(int(part["count"])))
    location = runtime.storage.put_bytes(request["output_key"], _encode(entries, fmt))
    return {"state": "SUCCESS", "result": json.dumps({"count": len(entries)}), "result_url": location, "traceback": ""}
