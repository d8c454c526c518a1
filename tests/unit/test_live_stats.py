"""Live endpoint figures over a window (observability/live_stats.py): rates from two records
the window apart, quantiles interpolated within buckets as PromQL does, refusals left out."""

from __future__ import annotations

import pytest

from launch_server.observability.figures import SECONDS_BUCKETS, ReplicaFigures
from launch_server.observability.live_stats import HISTORY_S, StatsHistory, Totals, quantile


def figures(successes: int, failures: int = 0, refused: int = 0, seconds: float = 0.003) -> ReplicaFigures:
    out = ReplicaFigures()
    for outcome, n in (("success", successes), ("failure", failures), ("refused", refused)):
        for _ in range(n):
            out.finished("sync", "direct", outcome, out.started())
    # finished() times the call itself; give every timed request the same known duration instead
    for histogram in out.durations.values():
        histogram.counts = [0] * len(histogram.counts)
        for _ in range(successes + failures):
            histogram.observe(seconds)
    return out


def test_quantiles_interpolate_within_a_bucket() -> None:
    counts = [0] * (len(SECONDS_BUCKETS) + 1)
    counts[SECONDS_BUCKETS.index(0.005)] = 10  # ten requests between 2.5 ms and 5 ms
    assert quantile(0.5, counts) == pytest.approx(0.0025 + 0.0025 * 0.5)
    assert quantile(0.99, counts) == pytest.approx(0.0025 + 0.0025 * 0.99)
    assert quantile(0.5, [0] * len(counts)) == 0.0
    counts[-1] = 1000  # beyond the last bound: reads as the last bound
    assert quantile(0.99, counts) == SECONDS_BUCKETS[-1]


def test_a_window_is_the_difference_of_two_records() -> None:
    history = StatsHistory()
    for at, (ok, bad, refused) in enumerate([(0, 0, 0), (10, 1, 5), (30, 1, 5), (50, 3, 9)]):
        history.record("app", Totals.of(100.0 + at * 5, figures(ok, bad, refused)))
    window = history.window("app", 10.0)  # records at 105 and 115
    assert window.seconds == pytest.approx(10.0)
    assert window.requests_per_second == pytest.approx((53 - 11) / 10)  # refusals left out
    assert window.errors_per_second == pytest.approx((3 - 1) / 10)
    assert window.p50_seconds == pytest.approx(0.0025 + 0.0025 * 0.5)  # all 42 in (2.5 ms, 5 ms]
    assert (window.requests_total, window.failures_total) == (53, 3)
    whole = history.window("app", 60.0)  # more than is kept: from the oldest record
    assert whole.seconds == pytest.approx(15.0)


def test_one_record_or_none_gives_zeros_and_old_ones_go() -> None:
    history = StatsHistory()
    assert history.window("nothing", 10).requests_per_second == 0
    history.record("app", Totals.of(0.0, figures(5)))
    assert history.window("app", 10).requests_per_second == 0
    history.record("app", Totals.of(HISTORY_S + 10, figures(9)))
    assert history.window("app", 60).seconds == 0  # the first record aged out
    history.keep_only(set())
    assert history.window("app", 10).requests_total == 0
