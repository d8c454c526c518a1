"""Keyset page tokens: opaque to clients, stable under concurrent inserts (newest first)."""

from __future__ import annotations

import base64
import json
from datetime import datetime

from launch_server.domain.entities import Page
from launch_server.domain.errors import InvalidArgument
from launch_server.domain.json_input import parse_json

MAX_PAGE_TOKEN_LEN = 512  # the tokens this server issues are about 100 characters


def encode_token(created_at: datetime, row_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> tuple[datetime, str] | None:
    if not token:
        return None
    try:
        if len(token) > MAX_PAGE_TOKEN_LEN:
            raise ValueError("too long")
        padded = token + "=" * (-len(token) % 4)
        created, row_id = parse_json("page_token", base64.urlsafe_b64decode(padded).decode(), MAX_PAGE_TOKEN_LEN)
        return datetime.fromisoformat(created), str(row_id)
    except (ValueError, TypeError, InvalidArgument):
        raise InvalidArgument("page_token", "is not a token this server issued") from None


def newest_first(query, created_col, id_col, page_token: str, page_size: int):  # type: ignore[no-untyped-def]
    """Orders a listing newest first and starts it after the token's row; fetches one extra row
    so page() can tell whether another page follows."""
    from sqlalchemy import and_, or_

    after = decode_token(page_token)
    if after is not None:
        created, row_id = after
        query = query.where(or_(created_col < created, and_(created_col == created, id_col < row_id)))
    return query.order_by(created_col.desc(), id_col.desc()).limit(page_size + 1)


def page(items: list, page_size: int, key) -> Page:  # type: ignore[no-untyped-def]
    """The first page_size items and, when there were more, the token of the last one.
    key(item) gives (created_at, id)."""
    token = encode_token(*key(items[page_size - 1])) if len(items) > page_size else ""
    return Page(items=items[:page_size], next_page_token=token)
