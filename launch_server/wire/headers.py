"""Metadata names and values the server, its replicas and the SDK exchange."""

from __future__ import annotations

from typing import Any

from launch_server.domain.errors import Unauthenticated

AUTHORIZATION_HEADER = "authorization"
# Sent as initial metadata once a request passed every check and is about to run (on a task
# channel: once the channel passed its checks): a caller that loses the call after seeing it
# knows the predict function may have run (task_queue/direct_calls.py).
ACCEPTED_HEADER = "launch-accepted"


def bearer_token(metadata: tuple[tuple[str, Any], ...] | None) -> str:
    """The token of an 'authorization: Bearer <token>' entry; Unauthenticated when there is none
    or it is malformed. API keys (server) and route tokens (replicas) both travel this way."""
    for key, value in metadata or ():
        if key == AUTHORIZATION_HEADER:
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("authorization metadata must be 'Bearer <api key>'")
            return token.strip()
    raise Unauthenticated("missing 'authorization: Bearer <api key>' metadata")
