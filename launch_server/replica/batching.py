"""What makes a predict function a batch function, and the rules every batch call follows,
whichever path its requests came by (batcher.py forms batches of live requests; batch jobs call
the function in slices, batch_chunks.py).

A batch function takes a list of inputs and returns a list of results, one per input and in the
same order. Each input is what the plain function would have been called with: the request's
keyword arguments as one dict, or the bytes its url names. The SDK's `launch.batched` marks a
function by setting BATCH_ATTRIBUTE on it to a plain dict of its limits, so the mark travels in a
cloudpickle bundle (a function's attributes are pickled with it), and a zip bundle's module sets it
when the replica imports it; no class of the SDK has to be importable where the bundle loads."""

from __future__ import annotations

from collections.abc import Iterable, Sized
from dataclasses import dataclass
from typing import Any

from launch_server.domain.batch_limits import (
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_BATCH_WAIT_MS,
    MAX_BATCH_SIZE,
    MAX_BATCH_WAIT_MS,
)
from launch_server.replica.call_kinds import unwrap_callable
from launch_server.replica.failures import RequestFailure

# Kept equal to the SDK's launch.batching.BATCH_ATTRIBUTE (a test checks).
BATCH_ATTRIBUTE = "__launch_batched__"


class BatchSpecError(ValueError):
    """A batch mark or an endpoint's batch limits that cannot be served; the message says why."""


@dataclass(frozen=True)
class BatchLimits:
    """How one replica groups requests: at most `max_batch_size` per call, and a wait of at most
    `max_wait_ms` for a fuller batch (0: a batch starts as soon as the function is free)."""

    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_wait_ms: int = DEFAULT_MAX_BATCH_WAIT_MS

    @property
    def max_wait_s(self) -> float:
        return self.max_wait_ms / 1000.0


def _bounded(what: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BatchSpecError(f"{what} must be an integer from {low} to {high}, got {value!r}")
    return value


def _mark_of(fn: Any) -> Any:
    """The batch mark on `fn` itself, or on the code a call of it runs first (a callable
    instance's `__call__`, a partial's function)."""
    mark = getattr(fn, BATCH_ATTRIBUTE, None)
    if mark is None:
        mark = getattr(unwrap_callable(fn), BATCH_ATTRIBUTE, None)
    return mark


def batch_limits_of(fn: Any, max_batch_size: int | None = None, max_wait_ms: int | None = None) -> BatchLimits | None:
    """The limits `fn` is served with: its mark's, each replaced by the endpoint's value when that
    is set; None for a plain function. BatchSpecError for a malformed mark, or for endpoint
    limits on a function that is not a batch function (they could only be ignored, silently)."""
    mark = _mark_of(fn)
    if mark is None:
        if max_batch_size is not None or max_wait_ms is not None:
            raise BatchSpecError(
                "the endpoint sets batch limits (max_batch_size / max_batch_wait_ms), but the bundle's "
                "predict function is not a batch function; decorate it with @launch.batched, or clear the "
                "endpoint's batch limits"
            )
        return None
    if not isinstance(mark, dict):
        raise BatchSpecError(f"the predict function's {BATCH_ATTRIBUTE} must be a dict, got {type(mark).__name__}")
    size = mark.get("max_batch_size", DEFAULT_MAX_BATCH_SIZE) if max_batch_size is None else max_batch_size
    wait = mark.get("max_wait_ms", DEFAULT_MAX_BATCH_WAIT_MS) if max_wait_ms is None else max_wait_ms
    return BatchLimits(
        _bounded("max_batch_size", size, 1, MAX_BATCH_SIZE),
        _bounded("max_wait_ms", wait, 0, MAX_BATCH_WAIT_MS),
    )


def split_results(results: Any, count: int) -> list[Any]:
    """A batch function's return value as one result per input; RequestFailure (which fails every
    request of the batch) when it is not a list of exactly `count` results."""
    if isinstance(results, str | bytes | bytearray | dict) or not (
        isinstance(results, Sized) and isinstance(results, Iterable)
    ):
        raise RequestFailure(
            f"the batch function returned a {type(results).__name__}; it must return a list with one "
            f"result per request, in order ({count} here)"
        )
    values = list(results)
    if len(values) != count:
        raise RequestFailure(
            f"the batch function returned {len(values)} results for {count} requests; it must return "
            "one result per request, in order"
        )
    return values
