"""The Ray gate: while it is closed no Ray call starts (so none can join a lost cluster again on
its own), and the server can wait for the calls already inside before it disconnects."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from launch_server.serving.ray_gate import RayGate, RayUnavailable


def test_closed_gate_refuses_calls_with_the_reason() -> None:
    gate = RayGate()
    gate.close("Ray cluster unreachable: the local Ray head exited with -9")
    with pytest.raises(RayUnavailable, match="head exited"), gate.held():
        pytest.fail("a Ray call ran behind a closed gate")
    with pytest.raises(ConnectionError):  # retried like any lost connection
        gate.check()
    gate.open()
    gate.check()
    with gate.held():
        pass


def test_wait_idle_waits_for_calls_inside() -> None:
    gate = RayGate()
    entered, release = threading.Event(), threading.Event()

    def call() -> None:
        with gate.held():
            entered.set()
            release.wait(10)

    worker = threading.Thread(target=call)
    worker.start()
    assert entered.wait(10)
    gate.close("lost")
    assert not gate.wait_idle(0.05)  # still inside
    release.set()
    assert gate.wait_idle(10)
    worker.join(10)


def test_cancellation_raised_by_ray_inside_the_gate_becomes_an_ordinary_error() -> None:
    """Ray cuts a waiting call off with a CancelledError when its connection goes; from a worker
    thread that would cancel the coroutine awaiting it (ending the reconciler's loop)."""
    gate = RayGate()
    with pytest.raises(RayUnavailable, match="cut off"), gate.held():
        raise asyncio.CancelledError
    assert gate.wait_idle(0)


def test_reconciler_loop_outlives_a_cancelled_ray_call(tmp_path: Path) -> None:
    from launch_server.serving.reconciler import Reconciler
    from launch_server.settings import Settings

    settings = Settings(data_dir=tmp_path)
    settings.reconcile_interval_s = 0.01
    reconciler = Reconciler(settings, None, None)  # type: ignore[arg-type]  # no pass reaches them
    passes = []

    def cancelled_pass() -> None:
        passes.append(1)
        raise asyncio.CancelledError  # as Ray raises it in the pass's thread

    reconciler._gated_pass = cancelled_pass  # type: ignore[method-assign]

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.create_task(reconciler.run(stop))
        while len(passes) < 3 and not loop.done():
            await asyncio.sleep(0.01)
        stop.set()
        reconciler.wake()
        await loop

    asyncio.run(main())
    assert len(passes) >= 3
