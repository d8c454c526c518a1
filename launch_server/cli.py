"""`launch-server`: runs the server (the default command) and manages API keys."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import click

from launch_server.composition import ControlPlane, Launch, build_control_plane, build_launch, ensure_dev_key
from launch_server.settings import Settings

log = logging.getLogger("launch_server")


def _settings(ctx: click.Context) -> Settings:
    params = ctx.find_root().params
    overrides: dict[str, object] = {}
    if params.get("data_dir"):
        overrides["data_dir"] = Path(params["data_dir"]).resolve()
    if params.get("database_url"):
        overrides["database_url"] = params["database_url"]
    return dataclasses.replace(Settings(), **overrides)


@click.group(invoke_without_command=True)
@click.option("--data-dir", envvar="LAUNCH_DATA_DIR", help="Directory for the embedded defaults [.launch].")
@click.option("--database-url", envvar="LAUNCH_DATABASE_URL", help="sqlite:///file or postgresql://...")
@click.pass_context
def main(ctx: click.Context, data_dir: str | None, database_url: str | None) -> None:
    """Launch server. Without a subcommand, runs `serve` with its defaults."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(serve)


@main.command()
@click.option("--bind", envvar="LAUNCH_BIND", help="host:port to listen on [127.0.0.1:50051].")
@click.option("--storage-url", envvar="LAUNCH_STORAGE_URL", help="file:///dir or s3://bucket/prefix.")
@click.option("--s3-endpoint-url", envvar="LAUNCH_S3_ENDPOINT_URL", help="For S3-compatible servers.")
@click.option("--ray-address", envvar="LAUNCH_RAY_ADDRESS", help="Existing Ray cluster; local by default.")
@click.option("--port-file", type=click.Path(), help="Write the bound port here once listening.")
@click.pass_context
def serve(
    ctx: click.Context,
    bind: str | None = None,
    storage_url: str | None = None,
    s3_endpoint_url: str | None = None,
    ray_address: str | None = None,
    port_file: str | None = None,
) -> None:
    """Run the gRPC server until SIGTERM or SIGINT, then drain and stop."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    flags = {"bind": bind, "storage_url": storage_url, "s3_endpoint_url": s3_endpoint_url, "ray_address": ray_address}
    settings = dataclasses.replace(_settings(ctx), **{name: value for name, value in flags.items() if value})
    launch = asyncio.run(_serve(settings, port_file))
    if launch.serving is not None:
        launch.serving.shutdown()
    log.info("stopped")


async def _serve(settings: Settings, port_file: str | None) -> Launch:
    from launch_server.api.server import (
        SERVICES,
        SERVING_LAYER_SERVICES,
        build_server,
        follow_serving_layer,
        mark_serving,
    )

    launch = build_launch(settings)
    control, serving = launch.control, launch.serving
    key = ensure_dev_key(control)
    if key:
        click.echo(f"Created development API key for owner 'dev' (saved to {control.settings.dev_key_file}):")
        click.echo(f"  {key}")
    server, port, health_servicer = build_server(launch.servicers, control.keys, control.settings.bind, launch.metrics)
    await server.start()
    metrics_port = _start_metrics(launch)
    # The serving layer's services report SERVING only once it has joined Ray (follow_serving_layer).
    control_plane = [name for name in ("", *SERVICES) if serving is None or name not in SERVING_LAYER_SERVICES]
    await mark_serving(health_servicer, True, tuple(control_plane))
    health_follower = None
    if serving is not None:
        health_follower = asyncio.create_task(follow_serving_layer(health_servicer, serving.reconciler.first_pass))
    host = control.settings.bind.rsplit(":", 1)[0]
    click.echo(f"launch-server listening on {host}:{port}", err=False)
    sys.stdout.flush()
    if metrics_port is not None:
        click.echo(f"launch-server metrics on http://{metrics_port[0]}:{metrics_port[1]}/metrics")
    sys.stdout.flush()
    if port_file:
        Path(port_file).write_text(str(port))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    serving_task = asyncio.create_task(serving.run(stop)) if serving is not None else None
    await stop.wait()
    log.info("shutting down: draining in-flight RPCs")
    if health_follower is not None:
        health_follower.cancel()
    await mark_serving(health_servicer, False)
    await server.stop(grace=10)
    if metrics_port is not None:
        metrics_port[2].shutdown()
    if serving_task is not None:
        await serving_task
    launch.close()
    return launch


def _start_metrics(launch: Launch) -> tuple[str, int, Any] | None:
    """The metrics port (settings.metrics_bind, "off" or LAUNCH_METRICS=0 for none): (host, port, its HTTP server)."""
    from launch_server.observability.exposition import start_metrics_port

    bind = launch.control.settings.metrics_bind
    if not launch.control.settings.metrics or bind.lower() in ("", "off", "0", "false", "no"):
        return None
    started = start_metrics_port(launch.metrics.registry, bind)
    if started is None:
        return None
    http_server, port = started
    return bind.rpartition(":")[0], port, http_server


@main.group()
def keys() -> None:
    """Create, list and revoke API keys (stored only as hashes)."""


def _control_plane(ctx: click.Context) -> ControlPlane:
    return build_control_plane(_settings(ctx))


@keys.command("create")
@click.option("--owner", required=True, help="Owner name the key acts as.")
@click.option("--description", default="", help="Free text kept with the key.")
@click.pass_context
def keys_create(ctx: click.Context, owner: str, description: str) -> None:
    """Create a key and print it once; only its hash is stored."""
    from launch_server.domain.errors import DomainError

    control = _control_plane(ctx)
    try:
        record, key = control.keys.create(owner, description)
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(key)
    click.echo(f"key id {record.key_id} for owner {record.owner}", err=True)


@keys.command("list")
@click.option("--owner", default=None, help="Only this owner's keys.")
@click.pass_context
def keys_list(ctx: click.Context, owner: str | None) -> None:
    """List key ids, owners and state (never the keys themselves)."""
    for record in _control_plane(ctx).keys.list(owner):
        state = f"revoked {record.revoked_at:%Y-%m-%d %H:%M}" if record.revoked_at else "active"
        click.echo(f"{record.key_id}\t{record.owner}\t{state}\t{record.description}")


@keys.command("revoke")
@click.argument("key_id")
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke a key by id; servers refuse it within their auth cache time (2 s by default)."""
    if not _control_plane(ctx).keys.revoke(key_id):
        raise click.ClickException(f"no active key with id {key_id!r}")
    click.echo(f"revoked {key_id}")


if __name__ == "__main__":
    main()
