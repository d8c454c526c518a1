"""The `launch` (alias `scale-launch`) entry point: global options and the command groups."""

from __future__ import annotations

import click

from .batch_jobs import batch_group
from .bundles import bundles_group
from .config_cmd import config_group
from .endpoints import endpoints_group
from .failures import LaunchGroup
from .state import CliState
from .tasks import tasks_group


@click.group(cls=LaunchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--api-key", metavar="KEY", help="API key (default: $LAUNCH_API_KEY, then the config file).")
@click.option(
    "--endpoint",
    metavar="HOST:PORT",
    help="Server address (default: $LAUNCH_ENDPOINT, then the config file, then localhost:50051).",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table for people, json for scripts.",
)
@click.version_option(package_name="launch-serving", prog_name="launch")
@click.pass_context
def cli(ctx: click.Context, api_key: str | None, endpoint: str | None, output: str) -> None:
    """Launch: manage model bundles, endpoints, requests and batch jobs on a launch-server."""
    ctx.obj = CliState(api_key_flag=api_key, endpoint_flag=endpoint, output=output)


for group in (config_group, bundles_group, endpoints_group, tasks_group, batch_group):
    cli.add_command(group)
