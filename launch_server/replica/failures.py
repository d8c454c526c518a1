"""How anything that goes wrong while a replica answers becomes a FAILURE answer.

A bad request or a raising predict function must never take the replica down, and the caller
must always learn why. Its own module so the bundle runtime and batch chunk work share one
exception type and one rule without importing each other."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import TypeVar

from launch_server.domain.requests import InferenceAnswer
from launch_server.replica.log_capture import CAPTURE

W = TypeVar("W")


class RequestFailure(Exception):
    """A request that cannot be answered for a reason the caller can act on: the reason is the
    whole answer, a traceback of our own code would only hide it."""


def reason_of(exc: BaseException) -> str:
    """What a failure answer says: a RequestFailure's own reason, else the traceback (call it
    while `exc` is being handled, so the traceback is the one that raised it). The endpoint's
    runtime logs get it too (log_capture.py)."""
    reason = str(exc) if isinstance(exc, RequestFailure) else traceback.format_exc()
    CAPTURE.failure(reason)
    return reason


def failed(reason: str) -> InferenceAnswer:
    """A FAILURE answer for a reason of the replica's own (a time limit, a deadline), which the
    endpoint's runtime logs get too, as they get every raised request's traceback."""
    CAPTURE.failure(reason)
    return InferenceAnswer.failure(reason)


def answer_or_failure(work: Callable[[W], InferenceAnswer], request: W) -> InferenceAnswer:
    """work(request), or a FAILURE answer naming why it raised; never raises (SystemExit from
    user code included: a predict function calling sys.exit must not stop the replica)."""
    try:
        return work(request)
    except (Exception, SystemExit) as exc:
        return InferenceAnswer.failure(reason_of(exc))
