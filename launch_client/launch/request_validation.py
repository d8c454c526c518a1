"""Client-side checks of a request before it is sent (the server checks again)."""

from __future__ import annotations

from typing import Any


def validate_task_request(url: str | None, args: dict[str, Any] | None) -> None:
    """Exactly one of url and args must be given."""
    if (url is None) == (args is None):
        raise ValueError("Must specify exactly one of url and args")
    if args is not None and not isinstance(args, dict):
        raise ValueError(f"args must be a dict of keyword arguments, got {type(args).__name__}")
