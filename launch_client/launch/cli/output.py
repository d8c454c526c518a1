"""Rendering: rich tables for people, plain JSON for scripts.

Everything meant for a program goes to stdout as one JSON document; progress, spinners and errors
go to stderr, so `launch -o json ... | jq` never sees anything but the result."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

WIDE = 200  # when stdout is not a terminal, do not fold names at 80 columns


def stdout_console() -> Console:
    """A console bound to the current stdout (made per call so test runners that swap sys.stdout
    are honoured)."""
    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal:
        console.width = WIDE
    return console


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def to_jsonable(value: Any) -> Any:
    """Dataclasses, datetimes and nested containers as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def print_json(value: Any) -> None:
    click.echo(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    return str(value)


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
    table = Table(title=title, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    stdout_console().print(table)


def print_fields(fields: Sequence[tuple[str, Any]], title: str | None = None) -> None:
    """One object as a two-column FIELD/VALUE table."""
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in fields:
        table.add_row(name, _cell(value))
    stdout_console().print(table)


def print_text(text: str) -> None:
    """Free text (logs, tracebacks) printed as is: no markup, no wrapping."""
    click.echo(text)


def print_message(message: str) -> None:
    """A short confirmation for people ("deleted bundle 'x'")."""
    stdout_console().print(message, markup=False)
