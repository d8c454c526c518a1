"""The callback sender (task_queue/callbacks.py) against real receivers on loopback and a real task
store (SQLite and PostgreSQL), without Ray: a receiver that trickles its answer costs one attempt its deadline and
nobody else anything; redirects are not followed; destinations outside LAUNCH_CALLBACK_NETWORKS
are refused whatever name leads to them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from launch_server.domain.requests import InferenceRequest
from launch_server.domain.tasks import Outcome, TaskInput, TaskState, finished_task, new_task
from launch_server.store.db import make_engine, upgrade
from launch_server.store.task_repository import SqlTaskRepository
from launch_server.task_queue.callback_targets import CallbackNetworks
from launch_server.task_queue.callbacks import CallbackSender
from tests.callback_receivers import Recorder, Trickler
from tests.support import create_pg_database, drop_pg_database

Row = tuple[str, int, str]


class Harness:
    """A CallbackSender running on its own event loop in a thread, over a real task store."""

    def __init__(self, url: str, networks: str, **options: float) -> None:
        upgrade(url)
        self.engine = make_engine(url)
        self.repo = SqlTaskRepository(self.engine)
        self.sender = CallbackSender(
            self.repo, networks=CallbackNetworks.parse(networks, local=False), poll_s=0.1, **options
        )
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._stop = asyncio.Event()
        self._running = asyncio.run_coroutine_threadsafe(self._run(), self.loop)

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        await self.sender.run(self._stop)

    def add(self, urls: list[str]) -> list[str]:
        now = datetime.now(UTC)
        tasks = []
        for url in urls:
            task = new_task("alice", "e1", "ep", TaskInput(InferenceRequest(args_json="{}"), url), 3600, None, now)
            task = dataclasses.replace(task, state=TaskState.STARTED, attempts=1, started_at=now)
            tasks.append(finished_task(task, Outcome(task.task_id, TaskState.SUCCESS, result="42"), now))
        self.repo.add_many(tasks, 10**6)
        self.loop.call_soon_threadsafe(self.sender.wake)
        return [t.task_id for t in tasks]

    def row(self, task_id: str) -> Row:
        with self.engine.connect() as conn:
            [row] = conn.execute(
                text("SELECT callback_state, callback_attempts, callback_error FROM tasks WHERE task_id = :id"),
                {"id": task_id},
            ).all()
        return tuple(row)  # type: ignore[return-value]

    def wait_rows(self, ids: list[str], done: Callable[[Row], bool], timeout: float) -> list[Row]:
        deadline = time.monotonic() + timeout
        while True:
            rows = [self.row(i) for i in ids]
            if all(done(r) for r in rows) or time.monotonic() > deadline:
                return rows
            time.sleep(0.1)

    def default_executor_answers(self, timeout: float) -> bool:
        """Whether a job on the loop's default executor (where database calls run) gets a thread."""
        probe = asyncio.run_coroutine_threadsafe(asyncio.to_thread(lambda: True), self.loop)
        try:
            return probe.result(timeout=timeout)
        except TimeoutError:
            probe.cancel()
            return False

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        with contextlib.suppress(Exception):
            self._running.result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.repo.close()
        self.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    """Makes one Harness over a fresh SQLite file or a throwaway PostgreSQL database."""
    url = f"sqlite:///{tmp_path / 'launch.db'}" if request.param == "sqlite" else create_pg_database()
    made: list[Harness] = []

    def make(networks: str = "127.0.0.1/32", **options: float) -> Harness:
        made.append(Harness(url, networks, **options))
        return made[-1]

    yield make
    for h in made:
        h.close()
    if request.param == "postgresql":
        drop_pg_database(url)


@pytest.fixture()
def trickler() -> Iterator[Trickler]:
    receiver = Trickler("127.0.0.1", every_s=2.0)
    yield receiver
    receiver.stop()


def failed(row: Row) -> bool:
    return row[0] == "FAILED"


def test_trickling_receivers_end_at_the_deadline_and_hold_no_shared_thread(
    harness: Callable[..., Harness], trickler: Trickler
) -> None:
    h = harness(deadline_s=6, max_attempts=1, concurrency=32)
    ids = h.add([trickler.url] * 24)
    assert trickler.wait_open(24, timeout=5) == 24, "every callback in flight at once"
    # The default executor (every database call's) still has threads for everyone else.
    assert h.default_executor_answers(timeout=10)
    assert h.repo.get_by_ids(ids[:1])
    rows = h.wait_rows(ids, failed, timeout=60)
    assert all(state == "FAILED" and attempts == 1 for state, attempts, _ in rows), rows
    assert all("deadline" in error and "LAUNCH_CALLBACK_DEADLINE_S" in error for _, _, error in rows), rows
    assert trickler.wait_drained(timeout=30) == 0, "every connection closed by the client"


def test_attempts_in_flight_are_bounded_by_concurrency(harness: Callable[..., Harness], trickler: Trickler) -> None:
    h = harness(deadline_s=2, max_attempts=1, concurrency=4)
    ids = h.add([trickler.url] * 10)
    rows = h.wait_rows(ids, failed, timeout=60)
    assert all(failed(r) for r in rows), rows
    assert trickler.requests == 10 and trickler.peak == 4, (trickler.requests, trickler.peak)


def test_a_redirect_to_another_scheme_is_not_followed(harness: Callable[..., Harness]) -> None:
    redirect = Recorder("127.0.0.1", status=302, location="file:///etc/passwd")
    try:
        h = harness()
        [task_id] = h.add([redirect.url()])
        [row] = h.wait_rows([task_id], failed, timeout=30)
        assert row[0] == "FAILED" and row[1] == 1, row  # final: the same URL would redirect again
        assert "302" in row[2] and "file:///etc/passwd" in row[2] and "do not follow redirects" in row[2], row
        assert redirect.hits == 1
    finally:
        redirect.stop()


def test_a_redirect_into_a_disallowed_network_is_not_followed(harness: Callable[..., Harness]) -> None:
    inside = Recorder("127.0.0.2")  # loopback, but outside the list below
    redirect = Recorder("127.0.0.1", status=302, location=inside.url("/inside"))
    try:
        h = harness("127.0.0.1/32")
        [task_id] = h.add([redirect.url()])
        [row] = h.wait_rows([task_id], failed, timeout=30)
        assert row[0] == "FAILED" and "302" in row[2] and "do not follow redirects" in row[2], row
        assert inside.hits == 0
    finally:
        redirect.stop()
        inside.stop()


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "2130706433", "[::ffff:127.0.0.1]"])
def test_a_host_that_leads_outside_the_networks_is_refused(harness: Callable[..., Harness], host: str) -> None:
    receiver = Recorder("127.0.0.1")
    try:
        h = harness("127.0.0.2/32")
        [task_id] = h.add([receiver.url(host=host)])
        [(state, attempts, error)] = h.wait_rows([task_id], failed, timeout=30)
        assert (state, attempts) == ("FAILED", 1), (state, attempts, error)
        assert "refused" in error and "127.0.0.1" in error and "LAUNCH_CALLBACK_NETWORKS" in error, error
        assert receiver.hits == 0
    finally:
        receiver.stop()


def test_an_allowed_receiver_gets_the_result(harness: Callable[..., Harness]) -> None:
    receiver = Recorder("127.0.0.2")
    try:
        h = harness("127.0.0.2/32")
        [task_id] = h.add([receiver.url()])
        [row] = h.wait_rows([task_id], lambda r: r[0] == "DONE", timeout=30)
        assert row == ("DONE", 1, ""), row
        assert receiver.posts == [
            ("/hook", {"task_id": task_id, "status": "SUCCESS", "result": "42", "traceback": None})
        ]
    finally:
        receiver.stop()


def test_an_unreachable_receiver_is_retried_with_a_clear_error(harness: Callable[..., Harness]) -> None:
    closed = Recorder("127.0.0.1")
    url = closed.url()
    closed.stop()  # nothing listens on that port now
    h = harness(base_delay_s=0.2, max_attempts=2)
    [task_id] = h.add([url])
    [row] = h.wait_rows([task_id], failed, timeout=30)
    assert row[0] == "FAILED" and row[1] == 2 and "Connection refused" in row[2], row


def test_an_error_answer_is_retried_then_given_up(harness: Callable[..., Harness]) -> None:
    receiver = Recorder("127.0.0.1", status=500)
    try:
        h = harness(base_delay_s=0.2, max_attempts=3)
        [task_id] = h.add([receiver.url()])
        [row] = h.wait_rows([task_id], failed, timeout=30)
        assert row == ("FAILED", 3, "attempt 3: answered HTTP 500 Internal Server Error"), row
        assert receiver.hits == 3
    finally:
        receiver.stop()
