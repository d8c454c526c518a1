"""The task channel's deadline and cancel (replica.proto's RunTasksRequest.timeout_seconds and
cancel), between a real ReplicaChannel and a real (unstarted) ReplicaListener on loopback gRPC:
the replica stops the task's code, frees its slot, and the channel goes on."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from launch.v1 import inference_pb2 as ipb

from launch_server.domain.requests import InferenceAnswer, InferenceRequest
from tests.integration.test_task_channel import Replica, eventually, opened, serving, task, until_set, work


class Looper:
    """A predict function that loops in 10 ms sleeps until its args' `seconds` pass, counting."""

    def __init__(self) -> None:
        self.count = 0
        self.started = threading.Event()

    def __call__(self, request: InferenceRequest) -> InferenceAnswer:
        args = json.loads(request.args_json)
        if not args.get("seconds"):
            return work(request)
        self.started.set()
        end = time.monotonic() + args["seconds"]
        while time.monotonic() < end:
            self.count += 1
            time.sleep(0.01)
        return InferenceAnswer(result="finished")

    async def stopped(self) -> bool:
        async def still() -> bool:
            before = self.count
            await asyncio.sleep(0.2)
            return self.count == before

        for _ in range(20):
            if await still():
                return True
        return False


def test_a_task_past_its_timeout_is_answered_failure_and_stopped() -> None:
    looper = Looper()
    replica = Replica(predict_fn=looper)

    async def scenario() -> None:
        async with serving(replica) as (_, stub):
            channel = await opened(stub)
            answer = await channel.run(task(x="hung", seconds=3600), timeout_s=0.5)
            assert answer.state == ipb.RESULT_STATE_FAILURE
            assert answer.traceback == "task exceeded its endpoint's task_timeout_seconds=0.5"
            assert await looper.stopped()
            assert replica.ingress.gauge.current == 0
            assert (await channel.run(task(x="next"), timeout_s=5)).state == ipb.RESULT_STATE_SUCCESS

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_a_cancelled_caller_stops_its_task_on_the_replica() -> None:
    looper = Looper()
    replica = Replica(predict_fn=looper)

    async def scenario() -> None:
        async with serving(replica) as (_, stub):
            channel = await opened(stub)
            running = asyncio.ensure_future(channel.run(task(x="cancelled", seconds=3600)))
            await until_set(looper.started)
            running.cancel()  # the task was cancelled: the dispatcher cancels its call
            with pytest.raises(asyncio.CancelledError):
                await running
            assert await looper.stopped()
            assert await eventually(lambda: replica.ingress.gauge.current == 0)
            assert channel.usable and channel.in_flight == 0
            assert (await channel.run(task(x="next"))).state == ipb.RESULT_STATE_SUCCESS
            await asyncio.wait_for(channel.close(), 10)

    asyncio.run(asyncio.wait_for(scenario(), 30))
