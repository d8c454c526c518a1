"""Per-invocation state shared by every command: the global flags and a lazily made client.

The client is made only when a command needs the server, so `launch config ...` and `--help` work
with no key and no server."""

from __future__ import annotations

from dataclasses import dataclass, field

import click

from launch.client import LaunchClient

from .failures import CliError
from .settings import Setting, config_path, resolve

NO_KEY = (
    "no API key: pass --api-key, set LAUNCH_API_KEY, or run `launch config set api_key KEY` "
    "(create one with `launch-server keys create --owner NAME`)"
)


@dataclass
class CliState:
    api_key_flag: str | None = None
    endpoint_flag: str | None = None
    output: str = "table"
    _client: LaunchClient | None = field(default=None, repr=False)

    @property
    def json(self) -> bool:
        return self.output == "json"

    def settings(self) -> dict[str, Setting]:
        return resolve({"api_key": self.api_key_flag, "endpoint": self.endpoint_flag}, config_path())

    def client(self) -> LaunchClient:
        if self._client is None:
            settings = self.settings()
            api_key = settings["api_key"].value
            if not api_key:
                raise CliError(NO_KEY, exit_code=2)
            self._client = LaunchClient(api_key=api_key, endpoint=settings["endpoint"].value)
            click.get_current_context().find_root().call_on_close(self._client.connection.close)
        return self._client


pass_state = click.make_pass_decorator(CliState)
