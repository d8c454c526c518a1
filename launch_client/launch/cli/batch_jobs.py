"""`launch batch-jobs`: run a bundle over a file of inputs, follow and cancel the job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from launch.client import LaunchClient

from .batch_progress import follow
from .failures import CliError
from .output import print_fields, print_json, print_message
from .parsing import jsonl_objects, key_values, url_lines
from .state import CliState, pass_state

_WAIT_TIMEOUT = click.option(
    "--timeout", type=click.FloatRange(min=0), default=None, help="With --wait: give up after this many seconds."
)


def _require(client: LaunchClient, method: str) -> Any:
    """The SDK method, or a clear error when this SDK predates batch jobs."""
    fn = getattr(client, method, None)
    if fn is None:
        raise CliError(f"UNIMPLEMENTED: this launch SDK has no {method}() (batch jobs need a newer version)")
    return fn


def _show(state: CliState, job_id: str, job: dict[str, Any]) -> None:
    record = {"job_id": job_id, **job}
    if state.json:
        print_json(record)
    else:
        print_fields(list(record.items()), title=f"batch job {job_id}")


def _finish(state: CliState, client: LaunchClient, job_id: str, timeout: float | None) -> None:
    job = follow(client, job_id, timeout, interval=1.0, show_bar=not state.json)
    _show(state, job_id, job)
    if job.get("status") != "SUCCESS":
        reason = job.get("status_reason") or "no reason given"
        raise CliError(f"batch job {job_id} ended {job.get('status')}: {reason}")


@click.group("batch-jobs")
def batch_group() -> None:
    """Run a bundle over many inputs as a batch job."""


@batch_group.command("create")
@click.argument("bundle")
@click.option(
    "--inputs-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON Lines file: one object of keyword arguments per input.",
)
@click.option("--urls-file", type=click.Path(dir_okay=False, path_type=Path), help="Text file: one input URL per line.")
@click.option(
    "--serialization-format",
    type=click.Choice(["json", "pickle"]),
    default="json",
    show_default=True,
    help="How the results object is written.",
)
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="batch_task_options entry, e.g. max_workers=2 or memory=1Gi (repeatable).",
)
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Label for the job (repeatable).")
@click.option("--wait", is_flag=True, help="Follow the job with a progress bar until it ends.")
@_WAIT_TIMEOUT
@pass_state
def batch_create(
    state: CliState,
    bundle: str,
    inputs_file: Path | None,
    urls_file: Path | None,
    serialization_format: str,
    options: tuple[str, ...],
    labels: tuple[str, ...],
    wait: bool,
    timeout: float | None,
) -> None:
    """Start a batch job running BUNDLE over the inputs in a file; prints the job id."""
    if (inputs_file is None) == (urls_file is None):
        raise click.UsageError("give exactly one of --inputs-file and --urls-file")
    inputs = jsonl_objects(inputs_file, "--inputs-file") if inputs_file is not None else None
    urls = url_lines(urls_file, "--urls-file") if urls_file is not None else None
    client = state.client()
    job_id = _require(client, "batch_async_request")(
        model_bundle=bundle,
        urls=urls,
        inputs=inputs,
        serialization_format=serialization_format,
        labels=key_values(labels, "--label", typed=False) or None,
        batch_task_options=key_values(options, "--option", typed=True) or None,
    )
    if wait:
        _require(client, "get_batch_async_response")
        _finish(state, client, job_id, timeout)
    elif state.json:
        print_json({"job_id": job_id})
    else:
        print_message(f"created batch job {job_id}")


@batch_group.command("get")
@click.argument("job_id")
@click.option("--wait", is_flag=True, help="Follow the job with a progress bar until it ends.")
@_WAIT_TIMEOUT
@pass_state
def batch_get(state: CliState, job_id: str, wait: bool, timeout: float | None) -> None:
    """Show a job's status, progress and results location."""
    client = state.client()
    get = _require(client, "get_batch_async_response")
    if wait:
        _finish(state, client, job_id, timeout)
    else:
        _show(state, job_id, get(job_id))


@batch_group.command("cancel")
@click.argument("job_id")
@pass_state
def batch_cancel(state: CliState, job_id: str) -> None:
    """Cancel a job that has not finished; inputs not yet run are dropped."""
    _show(state, job_id, _require(state.client(), "cancel_batch_job")(job_id))
