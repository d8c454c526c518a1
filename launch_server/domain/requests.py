"""The one request type that travels from a servicer to a replica, and the one answer type that
comes back, for sync predicts, async tasks and batch jobs alike. A batch job's chunk is a list of
the same requests; assembling a job's results is a request of its own.

Plain values: they travel over a Serve handle as themselves, are stored as JSON in a queued
task's row (to_json / task_work_from_json, the same form every earlier server wrote), and become
protobuf messages only at the gRPC edges (launch_server/wire/messages.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

SUCCESS = "SUCCESS"
FAILURE = "FAILURE"


@dataclass(frozen=True, slots=True)
class InferenceRequest:
    """One call of the predict function: exactly one of `url` (read by the replica) and
    `args_json` (a JSON object of keyword arguments, checked where it entered)."""

    url: str = ""
    args_json: str = ""
    return_pickled: bool = False

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"url": self.url} if self.url else {"args_json": self.args_json}
        body["return_pickled"] = self.return_pickled
        return body

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> InferenceRequest:
        return cls(
            url=str(body.get("url") or ""),
            args_json=str(body.get("args_json") or ""),
            return_pickled=bool(body.get("return_pickled")),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


@dataclass(frozen=True, slots=True)
class ChunkRequest:
    """One chunk of a batch job: its requests run one by one, each outcome written (in input
    order) to storage at `output_key`, pickled or as JSON (`format`)."""

    items: tuple[InferenceRequest, ...]
    format: str
    output_key: str

    def to_json(self) -> str:
        return json.dumps(
            {"chunk": [i.to_dict() for i in self.items], "format": self.format, "output_key": self.output_key}
        )


@dataclass(frozen=True, slots=True)
class AssemblePart:
    """A finished chunk's outcomes (`location`), or a chunk that failed as a whole: `count`
    inputs that each failed with `error`."""

    location: str = ""
    error: str = ""
    count: int = 0


@dataclass(frozen=True, slots=True)
class AssembleRequest:
    """Joins a batch job's chunk outcomes, in order, into its one results object at `output_key`."""

    parts: tuple[AssemblePart, ...]
    format: str
    output_key: str


TaskWork = InferenceRequest | ChunkRequest


def task_work_from_json(text: str) -> TaskWork:
    """A stored task's work, as to_json wrote it."""
    body = json.loads(text)
    if "chunk" in body:
        return ChunkRequest(
            items=tuple(InferenceRequest.from_dict(i) for i in body["chunk"]),
            format=str(body.get("format") or "json"),
            output_key=str(body["output_key"]),
        )
    return InferenceRequest.from_dict(body)


@dataclass(frozen=True, slots=True)
class InferenceAnswer:
    """What a replica answered for one request; `traceback` carries a failure's reason."""

    state: str = SUCCESS  # SUCCESS or FAILURE
    result: str = ""
    result_url: str = ""
    traceback: str = ""

    @property
    def succeeded(self) -> bool:
        return self.state == SUCCESS

    @classmethod
    def failure(cls, reason: str) -> InferenceAnswer:
        return cls(state=FAILURE, traceback=reason)
