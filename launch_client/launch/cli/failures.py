"""How failures reach the user: one `error: ...` line on stderr and a non-zero exit code, never a
traceback. Exit 1 means the request failed (server error, failed endpoint, timeout); exit 2 means
the command line or local settings were wrong (click's convention for usage errors)."""

from __future__ import annotations

import os
from typing import IO, Any

import click

from launch.errors import LaunchError

from .settings import ConfigError

DEBUG_ENV = "LAUNCH_CLI_DEBUG"  # set to 1 to see the traceback of an unexpected error


class CliError(click.ClickException):
    """A failure already worded for the user; shown as one `error:` line."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(one_line(message))
        self.exit_code = exit_code

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


def one_line(message: str) -> str:
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def code_name(exc: LaunchError) -> str:
    """The gRPC status name (client-side errors carry their class's status too)."""
    return exc.code.name if exc.code is not None else "ERROR"


def describe(exc: LaunchError) -> str:
    return f"{code_name(exc)}: {exc.message}"


def translate(exc: Exception) -> CliError:
    """Maps anything a command can raise onto a CliError (the caller re-raises click's own)."""
    if isinstance(exc, LaunchError):
        return CliError(describe(exc))
    if isinstance(exc, ConfigError):
        return CliError(f"config: {exc}", exit_code=2)
    if isinstance(exc, TimeoutError):
        return CliError(f"DEADLINE_EXCEEDED: {exc}")
    if isinstance(exc, ValueError | TypeError):
        return CliError(f"INVALID_ARGUMENT: {exc}", exit_code=2)
    return CliError(f"unexpected {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for a traceback)")


class LaunchGroup(click.Group):
    """The root group: every command runs inside its invoke, so failures are translated once here
    instead of in each command."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            raise translate(exc) from None
