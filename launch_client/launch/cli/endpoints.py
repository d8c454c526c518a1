"""`launch endpoints`: list, inspect, edit, wait for, watch (top, stats), read the logs of, and delete endpoints."""

from __future__ import annotations

import json
import time
from typing import Any

import click
from rich.live import Live

from launch.model_endpoint import ModelEndpoint
from launch.runtime_logs import MAX_SINCE_SECONDS

from .endpoint_wait import wait_until_ready
from .failures import CliError
from .output import (
    print_fields,
    print_json,
    print_message,
    print_table,
    print_text,
    stderr_console,
    stdout_console,
    to_jsonable,
)
from .parsing import duration_seconds
from .state import CliState, pass_state
from .stats_table import stats_table


def _workers(m: ModelEndpoint) -> str:
    w = m.workers
    return f"{w.get('available_workers', 0)} up, {w.get('min_workers')}-{w.get('max_workers')}"


def _gpus(m: ModelEndpoint) -> str:
    r = m.resources
    return f"{r.get('gpus') or 0}" + (f" {r['gpu_type']}" if r.get("gpu_type") else "")


def _batching(m: ModelEndpoint) -> str:
    """The endpoint's own batch limits; empty when it keeps both of the bundle's."""
    parts = []
    if m.max_batch_size is not None:
        parts.append(f"max_batch_size={m.max_batch_size}")
    if m.max_batch_wait_ms is not None:
        parts.append(f"max_batch_wait_ms={m.max_batch_wait_ms}")
    return ", ".join(parts)


def endpoint_fields(m: ModelEndpoint) -> list[tuple[str, Any]]:
    return [
        ("name", m.name),
        ("endpoint_id", m.endpoint_id),
        ("type", m.endpoint_type),
        ("status", m.status),
        ("status_reason", m.status_reason),
        ("bundle", m.bundle_name),
        ("generation", m.generation),
        ("workers", m.workers),
        ("resources", {k: v for k, v in m.resources.items() if v is not None}),
        ("post_inference_hooks", m.post_inference_hooks),
        ("default_callback_url", m.default_callback_url),
        ("labels", m.labels),
        ("batching", _batching(m) or "the bundle's own"),
    ]


def _show(state: CliState, m: ModelEndpoint) -> None:
    if state.json:
        print_json(m)
    else:
        print_fields(endpoint_fields(m), title=f"endpoint {m.name}")


def _get(state: CliState, name: str) -> ModelEndpoint:
    endpoint = state.client().get_model_endpoint(name)
    if endpoint is None:  # the SDK answers None rather than raising, as the original did
        raise CliError(f"NOT_FOUND: model endpoint '{name}' not found")
    return endpoint.model_endpoint


@click.group("endpoints")
def endpoints_group() -> None:
    """List, inspect, edit, wait for, watch, read the logs of and delete model endpoints."""


@endpoints_group.command("list")
@pass_state
def endpoints_list(state: CliState) -> None:
    """Every endpoint you own."""
    endpoints = [e.model_endpoint for e in state.client().list_model_endpoints()]
    if state.json:
        print_json(endpoints)
        return
    print_table(
        ["NAME", "TYPE", "STATUS", "BUNDLE", "WORKERS", "PER WORKER", "CPUS", "MEMORY", "GPUS", "BATCHING"],
        [
            (
                m.name,
                m.endpoint_type,
                m.status,
                m.bundle_name,
                _workers(m),
                m.workers.get("per_worker"),
                m.resources.get("cpus"),
                m.resources.get("memory"),
                _gpus(m),
                _batching(m),
            )
            for m in endpoints
        ],
    )


@endpoints_group.command("get")
@click.argument("name")
@pass_state
def endpoints_get(state: CliState, name: str) -> None:
    """Show one endpoint: status, settings and workers."""
    _show(state, _get(state, name))


@endpoints_group.command("edit")
@click.argument("name")
@click.option("--min-workers", type=click.IntRange(min=0), help="Fewest replicas (0 scales to zero).")
@click.option("--max-workers", type=click.IntRange(min=0), help="Most replicas.")
@click.option("--per-worker", type=click.IntRange(min=1), help="Concurrent requests per replica.")
@click.option("--cpus", type=click.FloatRange(min=0, min_open=True), help="CPUs per replica.")
@click.option("--memory", help="Memory per replica, e.g. 1Gi or 512Mi.")
@click.option("--gpus", type=click.IntRange(min=0), help="GPUs per replica.")
@click.option("--gpu-type", help="GPU type, e.g. nvidia-tesla-t4.")
@click.option(
    "--max-batch-size",
    type=click.IntRange(min=1),
    help="Most requests per call of the bundle's batch function (1-1024); replaces its @launch.batched value.",
)
@click.option(
    "--max-batch-wait-ms",
    type=click.IntRange(min=0),
    help="Milliseconds a worker waits for more requests before a batch that is not full (0-1000).",
)
@click.option("--bundle", "bundle", help="Roll out this bundle.")
@pass_state
def endpoints_edit(state: CliState, name: str, bundle: str | None, **settings: Any) -> None:
    """Change only the settings given; the endpoint goes back to UPDATE_PENDING and rolls out."""
    changes = {k: v for k, v in settings.items() if v is not None}
    if not changes and bundle is None:
        raise click.UsageError("give at least one setting to change (see --help)")
    endpoint = state.client().edit_model_endpoint(name, model_bundle=bundle, **changes)
    _show(state, endpoint.model_endpoint)


@endpoints_group.command("delete")
@click.argument("name")
@pass_state
def endpoints_delete(state: CliState, name: str) -> None:
    """Delete an endpoint and stop its replicas."""
    deleted = state.client().delete_model_endpoint(name)
    if state.json:
        print_json({"name": name, "deleted": deleted})
    elif deleted:
        print_message(f"deleted endpoint '{name}'")
    if not deleted:
        raise CliError(f"endpoint '{name}' was not deleted")


@endpoints_group.command("creation-logs")
@click.argument("name")
@pass_state
def endpoints_creation_logs(state: CliState, name: str) -> None:
    """Print the endpoint's status events and replica logs."""
    logs = state.client().read_endpoint_creation_logs(name)
    if state.json:
        print_json({"name": name, "logs": logs})
    else:
        print_text(logs)


@endpoints_group.command("logs")
@click.argument("name")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until interrupted (Ctrl-C).")
@click.option("--since", help="Only lines of the last DURATION (30s, 10m, 2h, 1d; at most 7d).")
@pass_state
def endpoints_logs(state: CliState, name: str, follow: bool, since: str | None) -> None:
    """Print what the endpoint's replicas' code printed and logged, and the tracebacks of its
    failed requests: TIME REPLICA STREAM TEXT per line, oldest first (-o json: one JSON object
    per line)."""
    since_s = duration_seconds(since, "--since", MAX_SINCE_SECONDS) if since is not None else None
    if since_s == 0:
        raise click.BadParameter("must be more than 0 (leave --since out for every line kept)", param_hint="--since")
    lines = state.client().stream_endpoint_logs(name, since_seconds=since_s, follow=follow)
    try:
        for line in lines:
            if state.json:
                click.echo(json.dumps(to_jsonable(line), ensure_ascii=False), nl=True)
            else:
                stamp = line.time.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
                click.echo(f"{stamp} {line.replica} {line.stream}: {line.text}")
    except KeyboardInterrupt:
        pass  # following ends here; closing the generator cancels the call
    finally:
        lines.close()


WINDOW_OPTION = click.option(
    "--window",
    type=click.FloatRange(min=0, max=60, min_open=True),
    default=10,
    show_default=True,
    help="Seconds the rates and latencies cover.",
)


@endpoints_group.command("stats")
@click.argument("names", nargs=-1)
@WINDOW_OPTION
@pass_state
def endpoints_stats(state: CliState, names: tuple[str, ...], window: float) -> None:
    """Print live figures of the named endpoints (all of yours when none is named), once:
    requests and errors per second, p50/p99 end to end, in flight, queued tasks, workers
    (running/desired, +starting, [min-max]). -o json for scripts."""
    stats = state.client().get_endpoint_stats(list(names) or None, window_seconds=window)
    if state.json:
        print_json(stats)
        return
    stdout_console().print(stats_table(stats, title=_window_title(stats, window)))


@endpoints_group.command("top")
@click.option(
    "--interval", type=click.FloatRange(min=0.5), default=2.0, show_default=True, help="Seconds between refreshes."
)
@WINDOW_OPTION
@click.option(
    "--iterations", type=click.IntRange(min=1), help="Stop after this many refreshes (default: until Ctrl-C)."
)
@pass_state
def endpoints_top(state: CliState, interval: float, window: float, iterations: int | None) -> None:
    """A live table of your endpoints' figures, refreshed every --interval seconds, until Ctrl-C."""
    client = state.client()
    console = stdout_console()
    shown = 0
    try:
        with Live(console=console, auto_refresh=False, transient=False) as live:
            while iterations is None or shown < iterations:
                stats = client.get_endpoint_stats(window_seconds=window)
                live.update(stats_table(stats, title=_window_title(stats, window)), refresh=True)
                shown += 1
                if iterations is None or shown < iterations:
                    time.sleep(interval)
    except KeyboardInterrupt:
        pass


def _window_title(stats: list, window: float) -> str:
    covered = max((s.window_seconds for s in stats), default=0.0)
    return f"endpoints, last {covered:.0f} s" if covered < window - 0.5 else f"endpoints, last {window:.0f} s"


@endpoints_group.command("wait")
@click.argument("name")
@click.option("--timeout", type=click.FloatRange(min=0), default=600, show_default=True, help="Seconds to wait.")
@click.option(
    "--interval", type=click.FloatRange(min=0.05), default=1.0, show_default=True, help="Seconds between polls."
)
@pass_state
def endpoints_wait(state: CliState, name: str, timeout: float, interval: float) -> None:
    """Block until the endpoint is READY. Exits 1 on UPDATE_FAILED (printing the reason) or when
    --timeout passes."""
    client = state.client()
    console = stderr_console()
    with console.status(f"waiting for endpoint {name}", spinner="dots") as spinner:

        def show(model: ModelEndpoint) -> None:
            spinner.update(f"waiting for endpoint {name}: {model.status} {model.status_reason}".rstrip())

        model = wait_until_ready(client, name, timeout, interval, on_status=show)
    if state.json:
        print_json(model)
    else:
        print_message(f"endpoint '{name}' is READY")
