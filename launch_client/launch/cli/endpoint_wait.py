"""Waiting for an endpoint to become READY. Scripts deploy and then need to block until the
endpoint serves (or learn why it never will), so this polls status and fails fast on states that
cannot lead to READY."""

from __future__ import annotations

import time
from collections.abc import Callable

from launch.client import LaunchClient
from launch.errors import NotFoundError
from launch.model_endpoint import ModelEndpoint

from .failures import CliError

READY = "READY"
FAILED = "UPDATE_FAILED"
DELETING = "DELETE_IN_PROGRESS"


def wait_until_ready(
    client: LaunchClient,
    name: str,
    timeout: float,
    interval: float,
    on_status: Callable[[ModelEndpoint], None] = lambda _: None,
) -> ModelEndpoint:
    """The endpoint once READY; CliError (exit 1) on UPDATE_FAILED, deletion or timeout."""
    endpoint = client.get_model_endpoint(name)
    if endpoint is None:
        raise NotFoundError(f"model endpoint '{name}' not found")
    deadline = time.monotonic() + timeout
    while True:
        model = endpoint.refresh()
        on_status(model)
        if model.status == READY:
            return model
        if model.status == FAILED:
            raise CliError(f"UPDATE_FAILED: endpoint '{name}': {model.status_reason or 'no reason given'}")
        if model.status == DELETING:
            raise CliError(f"FAILED_PRECONDITION: endpoint '{name}' is being deleted")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CliError(
                f"DEADLINE_EXCEEDED: endpoint '{name}' not READY after {timeout:g} s "
                f"(status {model.status}: {model.status_reason or 'no reason given'})"
            )
        time.sleep(min(interval, remaining))
