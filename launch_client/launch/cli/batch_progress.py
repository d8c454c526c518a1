"""Following a batch job to its end with a live progress bar (done/failed/total) on stderr, so
stdout keeps only the final record for scripts."""

from __future__ import annotations

import time
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from launch.client import LaunchClient

from .failures import CliError
from .output import stderr_console

TERMINAL = ("SUCCESS", "FAILURE", "CANCELLED")


def follow(client: LaunchClient, job_id: str, timeout: float | None, interval: float, show_bar: bool) -> dict[str, Any]:
    """Polls the job until it reaches a terminal status; returns its last record."""
    deadline = None if timeout is None else time.monotonic() + timeout
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("succeeded {task.fields[succeeded]}  failed {task.fields[failed]}"),
        TimeElapsedColumn(),
        console=stderr_console(),
        disable=not show_bar,
    )
    with progress:
        bar = progress.add_task(f"{job_id} PENDING", total=None, succeeded=0, failed=0)
        while True:
            job = client.get_batch_async_response(job_id)
            succeeded, failed = int(job.get("num_succeeded") or 0), int(job.get("num_failed") or 0)
            progress.update(
                bar,
                description=f"{job_id} {job.get('status')}",
                total=int(job.get("num_total") or 0) or None,
                completed=succeeded + failed,
                succeeded=succeeded,
                failed=failed,
            )
            if job.get("status") in TERMINAL:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise CliError(
                    f"DEADLINE_EXCEEDED: batch job {job_id} still {job.get('status')} after {timeout:g} s "
                    f"({succeeded + failed}/{job.get('num_total')} done)"
                )
            time.sleep(interval)
