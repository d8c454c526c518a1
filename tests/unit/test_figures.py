"""Replica figures and the servers' reading of them (observability/figures.py,
serving/replica_figures.py): snapshots round-trip, a malformed one is skipped whole, counters
never go down when replicas go, and a silent replica's requests stop counting as in flight."""

from __future__ import annotations

import json

import pytest

from launch_server.observability.exposition import _buckets
from launch_server.observability.figures import (
    SECONDS_BUCKETS,
    Histogram,
    ReplicaFigures,
    SnapshotError,
    parse_snapshot,
)
from launch_server.serving.replica_figures import FORGET_S, STALE_S, TOMBSTONE_S, ReplicaFiguresReader
from tests.observability import KIND_VALUES, OUTCOME_VALUES, PATH_VALUES

APP = "launch-e1"


def figures_with(requests: int, in_flight: int = 0) -> ReplicaFigures:
    figures = ReplicaFigures()
    for _ in range(requests):
        figures.finished("sync", "direct", "success", figures.started())
    for _ in range(in_flight):
        figures.started()
    figures.observe("compute", 0.003)
    return figures


def entry(figures: ReplicaFigures, written: float) -> bytes:
    return json.dumps(figures.snapshot(now=written)).encode()


def test_label_sets_are_the_documented_ones() -> None:
    from launch_server.observability import figures

    assert set(figures.KINDS) == KIND_VALUES
    assert set(figures.PATHS) == PATH_VALUES
    assert set(figures.OUTCOMES) == OUTCOME_VALUES


def test_a_snapshot_round_trips() -> None:
    original = figures_with(3, in_flight=2)
    written, figures = parse_snapshot(json.loads(entry(original, 100.0)))
    assert written == 100.0
    assert figures.requests == {("sync", "direct", "success"): 3}
    assert figures.in_flight == 2
    assert figures.durations[("sync", "direct")].count == 3
    assert figures.histograms["compute"].count == 1


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["requests"].append(["sync", "direct", "exploded", 1]),  # a label outside the set
        lambda d: d["requests"].append(["sync", "x" * 100, "success", 1]),
        lambda d: d.update(in_flight=-1),
        lambda d: d["histograms"]["compute"][0].append(1),  # a bucket too many
        lambda d: d["histograms"].update(compute=[[0] * 18, float("nan")]),
        lambda d: d.pop("cold_start"),
        lambda d: d.update(v=2),
    ],
)
def test_a_malformed_snapshot_is_refused_whole(change) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(entry(figures_with(1), 100.0))
    change(data)
    with pytest.raises(SnapshotError):
        parse_snapshot(data)


def test_counters_keep_a_replica_that_went_away() -> None:
    reader = ReplicaFiguresReader("launch")
    reader.absorb(
        {f"{APP}/r1".encode(): entry(figures_with(5), 100.0), f"{APP}/r2".encode(): entry(figures_with(2), 100.0)},
        101.0,
    )
    assert reader.by_app(101.0)[APP].requests[("sync", "direct", "success")] == 7
    reader.absorb({f"{APP}/r2".encode(): entry(figures_with(4), 103.0)}, 103.0)  # r1 scaled down
    assert reader.by_app(103.0)[APP].requests[("sync", "direct", "success")] == 9
    reader.absorb({}, 105.0)  # r2 too
    assert reader.by_app(105.0)[APP].requests[("sync", "direct", "success")] == 9


def test_a_silent_replica_leaves_the_in_flight_gauge_and_is_forgotten_later() -> None:
    reader = ReplicaFiguresReader("launch")
    key = f"{APP}/r1".encode()
    assert reader.absorb({key: entry(figures_with(1, in_flight=3), 100.0)}, 100.0) == []
    assert reader.by_app(100.0)[APP].in_flight == 3
    assert reader.by_app(100.0 + STALE_S + 1)[APP].in_flight == 0
    forget = reader.absorb({key: entry(figures_with(1, in_flight=3), 100.0)}, 100.0 + FORGET_S + 1)
    assert forget == [key]
    figures = reader.by_app(100.0 + FORGET_S + 1)[APP]
    assert (figures.in_flight, figures.requests[("sync", "direct", "success")]) == (0, 1)


def test_other_prefixes_and_junk_are_ignored() -> None:
    reader = ReplicaFiguresReader("launch")
    reader.absorb(
        {
            b"other-e1/r1": entry(figures_with(1), 100.0),
            f"{APP}/r1".encode(): b"not json",
            f"{APP}/r2".encode(): b"x" * (1 << 20),
        },
        100.0,
    )
    assert reader.by_app(100.0) == {}


def successes(reader: ReplicaFiguresReader, now: float) -> int:
    return reader.by_app(now)[APP].requests[("sync", "direct", "success")]


def test_a_replica_missing_from_one_read_is_not_counted_twice() -> None:
    reader = ReplicaFiguresReader("launch")
    key = f"{APP}/r1".encode()
    reader.absorb({key: entry(figures_with(5), 100.0)}, 100.0)
    reader.absorb({}, 102.0)  # its write was late (a busy loop, a GCS hiccup)
    assert successes(reader, 102.0) == 5
    reader.absorb({key: entry(figures_with(6), 104.0)}, 104.0)  # back, with its running total
    assert successes(reader, 104.0) == 6
    reader.absorb({}, 106.0)
    reader.absorb({}, 106.0 + TOMBSTONE_S + 1)  # gone for good: folded into the retired total
    assert successes(reader, 106.0 + TOMBSTONE_S + 1) == 6
    assert reader.by_app(106.0 + TOMBSTONE_S + 1)[APP].in_flight == 0


def test_ages_are_judged_on_the_servers_clock() -> None:
    """A replica whose clock runs an hour ahead or behind is live as long as its snapshot changes."""
    reader = ReplicaFiguresReader("launch")
    ahead, behind = f"{APP}/ahead".encode(), f"{APP}/behind".encode()
    for step in range(3):
        now = 100.0 + step * 30  # each read, both replicas have written again
        entries = {
            ahead: entry(figures_with(1, in_flight=1), now + 3600 + step),
            behind: entry(figures_with(1, in_flight=1), now - 3600 + step),
        }
        assert reader.absorb(entries, now) == []
    figures = reader.by_app(160.0)[APP]
    assert (figures.in_flight, figures.requests[("sync", "direct", "success")]) == (2, 2)


def test_an_absurd_number_skips_that_snapshot_only() -> None:
    reader = ReplicaFiguresReader("launch")
    huge = json.loads(entry(figures_with(1), 100.0))
    huge["written"] = 10**400
    big_count = json.loads(entry(figures_with(1), 100.0))
    big_count["requests"][0][3] = 2**60
    reader.absorb(
        {
            f"{APP}/huge".encode(): json.dumps(huge).encode(),
            f"{APP}/big".encode(): json.dumps(big_count).encode(),
            f"{APP}/ok".encode(): entry(figures_with(2), 100.0),
        },
        100.0,
    )
    assert successes(reader, 100.0) == 2


def test_a_deleted_endpoints_figures_go_with_it() -> None:
    served = {APP, "launch-e2"}
    reader = ReplicaFiguresReader("launch", served_apps=lambda: served)
    reader.absorb(
        {f"{APP}/r1".encode(): entry(figures_with(1), 100.0), b"launch-e2/r1": entry(figures_with(1), 100.0)}, 100.0
    )
    served.discard("launch-e2")
    reader.absorb({f"{APP}/r1".encode(): entry(figures_with(1), 100.0)}, 102.0)
    assert set(reader.by_app(102.0)) == {APP}
    reader.absorb({b"launch-e3/r1": entry(figures_with(1), 100.0)}, 104.0)  # not one of this server's
    assert set(reader.by_app(104.0)) == {APP}


def test_a_refused_request_is_counted_but_not_timed() -> None:
    figures = ReplicaFigures()
    figures.finished("sync", "direct", "refused", figures.started())
    assert figures.requests == {("sync", "direct", "refused"): 1}
    assert figures.durations == {}


def test_scrapes_while_reads_land() -> None:
    import threading

    reader = ReplicaFiguresReader("launch")
    failures: list[BaseException] = []
    done = threading.Event()

    def scrape() -> None:
        while not done.is_set():
            try:
                reader.by_app(100.0)
            except BaseException as exc:  # noqa: BLE001 - what the test looks for
                failures.append(exc)
                return

    thread = threading.Thread(target=scrape)
    thread.start()
    try:
        for i in range(300):
            reader.absorb({f"launch-e{i}/r{j}".encode(): entry(figures_with(1), 100.0) for j in range(3)}, 100.0 + i)
    finally:
        done.set()
        thread.join()
    assert failures == []


def test_a_disabled_figures_counts_nothing() -> None:
    figures = ReplicaFigures()
    figures.enabled = False
    figures.finished("sync", "direct", "success", figures.started())
    figures.observe("compute", 1.0)
    figures.cold_start_phase("load", 1.0)
    assert (figures.requests, figures.in_flight, figures.histograms["compute"].count) == ({}, 0, 0)


def test_buckets_are_cumulative_with_inf() -> None:
    histogram = Histogram(SECONDS_BUCKETS)
    for value in (0.0001, 0.0007, 0.2, 1000.0):
        histogram.observe(value)
    buckets = dict(_buckets(histogram))
    assert buckets[repr(0.0005)] == 1
    assert buckets[repr(0.001)] == 2
    assert buckets[repr(0.25)] == 3
    assert buckets[repr(300.0)] == 3
    assert buckets["+Inf"] == 4
