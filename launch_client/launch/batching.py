"""`launch.batched`: marks a predict function as a batch function, so an endpoint serving it
groups the requests a worker holds into one call (dynamic batching).

A batch function takes a list of inputs and returns a list of results, one per input, in order.
Each input is what the plain function would have been called with: the request's `args` as one
dict, or the bytes its `url` names. The mark is a plain dict on the function, so it travels inside
a cloudpickle bundle with the function and needs nothing of the SDK where the bundle loads; in a
zip bundle's module the decorator sets it when the module is imported."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

F = TypeVar("F", bound=Callable[..., Any])

# The attribute the replica reads (launch_server/replica/batching.py keeps the same name), and
# the bounds it enforces (launch_server/domain/batch_limits.py).
BATCH_ATTRIBUTE = "__launch_batched__"
MAX_BATCH_SIZE = 1024
MAX_BATCH_WAIT_MS = 1000


def _checked(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"launch.batched: {name} must be an integer from {low} to {high}, got {value!r}")
    return value


@overload
def batched(fn: F, /) -> F: ...


@overload
def batched(*, max_batch_size: int = 32, max_wait_ms: int = 0) -> Callable[[F], F]: ...


def batched(fn: Any = None, /, *, max_batch_size: int = 32, max_wait_ms: int = 0) -> Any:
    """Decorates a batch function: `@launch.batched` or `@launch.batched(max_batch_size=32,
    max_wait_ms=2)`. It works on a function, on a callable class's `__call__`, and on the function
    a `load_predict_fn` returns. `max_batch_size` (1 to 1024) caps one call; `max_wait_ms` (0 to
    1000, default 0) is how long a worker may hold a batch that is not full waiting for more: with
    0 a request that finds the function idle starts at once, and batches form only from requests
    that arrived while the previous batch ran. An endpoint's own limits (`max_batch_size`,
    `max_batch_wait_ms` of create/edit_model_endpoint) replace these without a new bundle. The
    function itself is returned unchanged, so it can still be called directly."""
    mark = {
        "max_batch_size": _checked("max_batch_size", max_batch_size, 1, MAX_BATCH_SIZE),
        "max_wait_ms": _checked("max_wait_ms", max_wait_ms, 0, MAX_BATCH_WAIT_MS),
    }

    def decorate(target: F) -> F:
        if not callable(target):
            raise TypeError(f"launch.batched decorates a function, not a {type(target).__name__}")
        setattr(target, BATCH_ATTRIBUTE, dict(mark))
        return target

    return decorate if fn is None else decorate(fn)
