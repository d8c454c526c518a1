"""How `launch endpoints top` and `stats` show live endpoint figures: one rich table, a row per
endpoint, with rates per second, latencies in readable units and workers as running/desired."""

from __future__ import annotations

from rich.table import Table

from launch.endpoint_stats import EndpointStats

COLUMNS = ("NAME", "TYPE", "STATUS", "REQ/S", "P50", "P99", "ERR/S", "IN FLIGHT", "QUEUED", "OLDEST", "WORKERS")


def seconds_text(seconds: float) -> str:
    """0.0123 -> 12.3ms; 0 (nothing measured) -> -."""
    if seconds <= 0:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.3g}ms"
    return f"{seconds:.3g}s"


def rate_text(per_second: float) -> str:
    return f"{per_second:.1f}" if per_second < 100 else f"{per_second:,.0f}"


def workers_text(stats: EndpointStats) -> str:
    """running/desired (+starting) [min-max], e.g. 2/3 (+1) [0-4]."""
    desired = "?" if stats.workers_desired is None else str(stats.workers_desired)
    starting = f" (+{stats.workers_starting})" if stats.workers_starting else ""
    return f"{stats.workers_running}/{desired}{starting} [{stats.min_workers}-{stats.max_workers}]"


def row(stats: EndpointStats) -> tuple[str, ...]:
    is_async = stats.endpoint_type == "async"
    return (
        stats.name,
        stats.endpoint_type,
        stats.status,
        rate_text(stats.requests_per_second),
        seconds_text(stats.p50_seconds),
        seconds_text(stats.p99_seconds),
        rate_text(stats.errors_per_second),
        str(stats.in_flight),
        str(stats.tasks_queued) if is_async else "-",
        seconds_text(stats.oldest_queued_seconds) if is_async else "-",
        workers_text(stats),
    )


def stats_table(stats: list[EndpointStats], title: str | None = None) -> Table:
    table = Table(title=title, header_style="bold")
    for column in COLUMNS:
        justify = "left" if column in ("NAME", "TYPE", "STATUS", "WORKERS") else "right"
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for item in stats:
        table.add_row(*row(item))
    return table
