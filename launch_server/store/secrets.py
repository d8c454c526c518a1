"""Shared server secrets: made once by whichever server starts first, read by every other."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from launch_server.store.db import writer
from launch_server.store.tables import ServerSecretRow


def shared_secret(engine: Engine, name: str, make: Callable[[], str] = lambda: secrets.token_hex(32)) -> str:
    """The secret called name, created by `make` (32 random bytes, hex, by default) when no server
    has made it yet. Two servers starting at once both try the insert; the loser reads the winner's."""
    with Session(engine) as session:
        row = session.get(ServerSecretRow, name)
        if row is not None:
            return row.value
    try:
        with Session(writer(engine)) as session:
            row = session.get(ServerSecretRow, name)
            if row is None:
                row = ServerSecretRow(name=name, value=make(), created_at=datetime.now(UTC))
                session.add(row)
                session.commit()
            return row.value
    except IntegrityError:
        with Session(engine) as session:
            row = session.get(ServerSecretRow, name)
            assert row is not None
            return row.value
