"""What kind of callable a bundle's predict function is, judged once when the bundle loads: the
kind decides where its code runs (blocking code on the predict thread pool, async code on the
replica's event loop, replica_loop.py) and how its values are read (one value, or each value a
generator yields). A callable that turns out at call time to return a generator, a coroutine or
an async generator (a decorator's plain wrapper, say) is still served by what it returned
(bundle_runtime.BundleRuntime.call, streams.py)."""

from __future__ import annotations

import functools
import inspect
from enum import Enum
from typing import Any


class CallKind(Enum):
    PLAIN = "plain"
    GENERATOR = "generator"
    COROUTINE = "coroutine"
    ASYNC_GENERATOR = "async generator"

    @property
    def on_loop(self) -> bool:
        """Whether its code runs on the replica's event loop rather than the predict pool."""
        return self in (CallKind.COROUTINE, CallKind.ASYNC_GENERATOR)


def unwrap_callable(fn: Any) -> Any:
    """The code a call of `fn` runs first: through functools.partial layers, and to the class's
    `__call__` for a callable instance (a function, method or class is itself)."""
    seen = 0
    while isinstance(fn, functools.partial) and seen < 100:
        fn, seen = fn.func, seen + 1
    if inspect.isroutine(fn) or inspect.isclass(fn):
        return fn
    call = getattr(type(fn), "__call__", None)  # noqa: B004 - the class's method, not callable()
    if call is None:
        return fn
    return unwrap_callable(call) if isinstance(call, functools.partial) else call


def call_kind_of(fn: Any) -> CallKind:
    target = unwrap_callable(fn)
    if inspect.isasyncgenfunction(target):
        return CallKind.ASYNC_GENERATOR
    if inspect.iscoroutinefunction(target):
        return CallKind.COROUTINE
    if inspect.isgeneratorfunction(target):
        return CallKind.GENERATOR
    return CallKind.PLAIN
