"""Keyset page tokens: opaque to clients, stable under concurrent inserts (newest first)."""

from __future__ import annotations

import base64
import json
from datetime import datetime

from launch_server.domain.errors import InvalidArgument


def encode_token(created_at: datetime, row_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> tuple[datetime, str] | None:
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        created, row_id = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(created), str(row_id)
    except (ValueError, TypeError):
        raise InvalidArgument("page_token", "is not a token this server issued") from None
