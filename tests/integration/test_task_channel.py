"""The task channel (ReplicaService.RunTasks) end to end over real gRPC on loopback: the replica's
end (serving/task_channel.py, as the direct-route listener hosts it) and the dispatcher's end
(tasks/replica_channel.py), with a predict function of the test's own in the replica's place.
What matters is what the dispatcher learns about a task that did not come back: never ran
(NotRun: safe to send elsewhere) or may have run (ChannelBroken: a counted attempt)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from launch.v1 import inference_pb2 as ipb
from launch.v1 import replica_pb2_grpc as rgrpc

from launch_server.serving.direct_ingress import DirectConfig, InflightGauge
from launch_server.serving.route_tokens import TokenCheck, endpoint_key, mint
from launch_server.serving.task_channel import TaskChannelServicer
from launch_server.tasks.replica_channel import ChannelBroken, NotRun, ReplicaChannel

SECRET = b"test-secret"
KEY = endpoint_key(SECRET, "e1")


def work(payload: dict[str, Any]) -> dict[str, Any]:
    """Sleeps `sleep` seconds, then echoes its args, like a bundle's predict function would."""
    args = json.loads(str(payload["args_json"]))
    time.sleep(args.get("sleep", 0))
    return {"state": "SUCCESS", "result": json.dumps(args)}


@dataclass
class Replica:
    """What the channel's replica end reads from the direct-route listener (DirectIngress)."""

    predict_fn: Callable[[dict[str, Any]], dict[str, Any]] = work
    max_concurrent_rpcs: int = 100
    tokens: TokenCheck = field(default_factory=lambda: TokenCheck(KEY, "e1"))
    gauge: InflightGauge = field(default_factory=InflightGauge)
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(4))
    closing: bool = False
    last_request: float = 0.0
    ran: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        inner = self.predict_fn

        def counted(payload: dict[str, Any]) -> dict[str, Any]:
            self.ran.append(payload)
            return inner(payload)

        self.predict_fn = counted
        self.config = DirectConfig("e1", "ep", KEY.hex(), max_concurrent_rpcs=self.max_concurrent_rpcs)


@asynccontextmanager
async def serving(replica: Replica) -> AsyncIterator[tuple[grpc.aio.Server, rgrpc.ReplicaServiceStub]]:
    server = grpc.aio.server()
    rgrpc.add_ReplicaServiceServicer_to_server(TaskChannelServicer(replica), server)  # type: ignore[arg-type]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield server, rgrpc.ReplicaServiceStub(channel)
    finally:
        await channel.close()
        await server.stop(None)
        replica.executor.shutdown(wait=False)


def token(ttl_s: float = 300) -> str:
    return mint(SECRET, "e1", ttl_s)[0]


def task(**args: Any) -> ipb.RequestInput:
    return ipb.RequestInput(args_json=json.dumps(args))


def test_tasks_share_one_call_and_each_answer_finds_its_task() -> None:
    replica = Replica()

    async def scenario() -> None:
        async with serving(replica) as (_, stub):
            channel = ReplicaChannel(stub, token())
            await channel.open(5)
            slow = asyncio.ensure_future(channel.run(task(x="slow", sleep=0.5)))
            await asyncio.sleep(0.05)
            fast = await channel.run(task(x="fast"))  # answered while the slow one still runs
            assert (fast.state, json.loads(fast.result)) == (ipb.RESULT_STATE_SUCCESS, {"x": "fast"})
            assert not slow.done()
            assert json.loads((await slow).result) == {"x": "slow", "sleep": 0.5}
            many = await asyncio.gather(*(channel.run(task(x=i)) for i in range(50)))
            assert [json.loads(r.result)["x"] for r in many] == list(range(50))
            await channel.close()
            assert channel.broken is not None and channel.broken.code is None  # ended by us, cleanly
            assert replica.gauge.current == 0

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert len(replica.ran) == 52


def test_a_refused_task_never_ran_and_the_channel_goes_on() -> None:
    replica = Replica(max_concurrent_rpcs=1)

    async def scenario() -> None:
        async with serving(replica) as (_, stub):
            channel = ReplicaChannel(stub, token())
            await channel.open(5)
            with pytest.raises(NotRun, match="exactly one of url and args_json"):
                await channel.run(ipb.RequestInput())  # malformed: refused, not run
            busy = asyncio.ensure_future(channel.run(task(x="busy", sleep=0.5)))
            await asyncio.sleep(0.1)
            with pytest.raises(NotRun, match="concurrency limit"):
                await channel.run(task(x="over the limit"))
            assert json.loads((await busy).result)["x"] == "busy"
            replica.closing = True
            with pytest.raises(NotRun, match="stopping"):
                await channel.run(task(x="late"))
            assert channel.usable

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert [json.loads(p["args_json"])["x"] for p in replica.ran] == ["busy"]


def test_an_expired_token_refuses_tasks_and_a_bad_one_never_opens() -> None:
    replica = Replica()

    async def scenario() -> None:
        async with serving(replica) as (_, stub):
            with pytest.raises(NotRun, match="UNAUTHENTICATED"):
                await ReplicaChannel(stub, "lr1.e1.9999999999.forged").open(5)
            with pytest.raises(NotRun, match="UNAUTHENTICATED"):
                await ReplicaChannel(stub, mint(b"another secret", "e1", 300)[0]).open(5)
            short = ReplicaChannel(stub, token(ttl_s=2))
            await short.open(5)
            assert (await short.run(task(x=1))).state == ipb.RESULT_STATE_SUCCESS
            await asyncio.sleep(2.2)  # the token expires while the channel is open
            with pytest.raises(NotRun, match="expired"):
                await short.run(task(x=2))

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert len(replica.ran) == 1


def test_a_channel_that_breaks_with_a_task_out_says_it_may_have_run() -> None:
    started = threading.Event()

    def stuck(payload: dict[str, Any]) -> dict[str, Any]:
        started.set()
        time.sleep(3)
        return work(payload)

    replica = Replica(predict_fn=stuck)

    async def scenario() -> None:
        async with serving(replica) as (server, stub):
            channel = ReplicaChannel(stub, token())
            await channel.open(5)
            out = asyncio.ensure_future(channel.run(task(x="out")))
            await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
            await server.stop(None)  # the replica's port closes with the task running
            with pytest.raises(ChannelBroken):
                await out
            assert not channel.usable
            with pytest.raises(NotRun):  # nothing more is sent on a broken channel
                await channel.run(task(x="after"))

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert [json.loads(p["args_json"])["x"] for p in replica.ran] == ["out"]


def test_nothing_listening_is_not_run() -> None:
    async def scenario() -> None:
        channel = grpc.aio.insecure_channel("127.0.0.1:9")  # the discard port: nothing listens
        try:
            with pytest.raises(NotRun):
                await ReplicaChannel(rgrpc.ReplicaServiceStub(channel), token()).open(1)
        finally:
            await channel.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))
