"""The task channel (ReplicaService.RunTasks) end to end over real gRPC on loopback: the replica's
end (replica/task_channel.py, as the direct-route listener hosts it), the dispatcher's end
(task_queue/task_channel_client.py) and the dispatcher's choice of replica and channel (task_queue/direct_calls.py),
with a predict function of the test's own in the replica's place and the router's answer (replica
addresses and a token) given by the test.
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

from launch_server.domain.requests import InferenceAnswer, InferenceRequest
from launch_server.replica import task_channel
from launch_server.replica.listener import DirectConfig, ReplicaListener
from launch_server.replica.task_channel import TaskChannelServicer
from launch_server.task_queue.direct_calls import DirectCalls, ReplicaDied
from launch_server.task_queue.task_channel_client import ChannelBroken, NotRun, ReplicaChannel
from launch_server.wire.route_tokens import endpoint_key, mint

SECRET = b"test-secret"
KEY = endpoint_key(SECRET, "e1")


def work(request: InferenceRequest) -> InferenceAnswer:
    """Sleeps `sleep` seconds, then echoes its args, like a bundle's predict function would."""
    args = json.loads(request.args_json)
    time.sleep(args.get("sleep", 0))
    return InferenceAnswer(result=json.dumps(args))


class Replica:
    """A real ReplicaListener (the replica's direct-route listener), not started: the test hosts its
    task channel on a plain gRPC server, so no Ray is needed. `ran` records what it ran, `opened`
    and `closed` count the channels."""

    def __init__(
        self, predict_fn: Callable[[InferenceRequest], InferenceAnswer] = work, max_concurrent_rpcs: int = 100
    ):
        self.ran: list[InferenceRequest] = []
        self.opened = self.closed = 0
        self.executor = ThreadPoolExecutor(4)

        def counted(request: InferenceRequest) -> InferenceAnswer:
            self.ran.append(request)
            return predict_fn(request)

        config = DirectConfig("e1", "ep", KEY.hex(), max_concurrent_rpcs=max_concurrent_rpcs)
        self.ingress = ReplicaListener(config, "app", "replica-1", counted, self.executor)

    def ran_xs(self) -> list[Any]:
        return [json.loads(r.args_json)["x"] for r in self.ran]


class CountedServicer(TaskChannelServicer):
    """The replica's end as it is, counting the channels opened to it."""

    def __init__(self, replica: Replica) -> None:
        super().__init__(replica.ingress)
        self.replica = replica

    async def RunTasks(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        self.replica.opened += 1
        try:
            await super().RunTasks(request_iterator, context)
        finally:
            self.replica.closed += 1


@asynccontextmanager
async def serving(replica: Replica) -> AsyncIterator[tuple[grpc.aio.Server, rgrpc.ReplicaServiceStub]]:
    server = grpc.aio.server()
    rgrpc.add_ReplicaServiceServicer_to_server(CountedServicer(replica), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield server, rgrpc.ReplicaServiceStub(channel)
    finally:
        await channel.close()
        await server.stop(None)
        replica.executor.shutdown(wait=False)


def signalled(sleep_s: float = 0.0) -> tuple[threading.Event, Callable[[InferenceRequest], InferenceAnswer]]:
    """A predict function that says when it starts running, then takes `sleep_s` (and its args' sleep)."""
    started = threading.Event()

    def predict_fn(request: InferenceRequest) -> InferenceAnswer:
        started.set()
        time.sleep(sleep_s)
        return work(request)

    return started, predict_fn


async def until_set(event: threading.Event) -> None:
    assert await asyncio.get_running_loop().run_in_executor(None, event.wait, 10)


async def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return condition()


async def opened(stub: rgrpc.ReplicaServiceStub, with_token: str | None = None) -> ReplicaChannel:
    channel = ReplicaChannel(stub, with_token or token())
    await channel.open(5)
    return channel


def token(ttl_s: float = 300) -> str:
    return mint(SECRET, "e1", ttl_s)[0]


def task(**args: Any) -> ipb.RequestInput:
    return ipb.RequestInput(args_json=json.dumps(args))


def test_tasks_share_one_call_and_each_answer_finds_its_task() -> None:
    replica = Replica()

    async def scenario() -> None:
        async with serving(replica) as (_, stub):
            channel = await opened(stub)
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
            assert replica.ingress.gauge.current == 0

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert len(replica.ran) == 52


def test_a_refused_task_never_ran_and_the_channel_goes_on() -> None:
    started, predict_fn = signalled()
    replica = Replica(predict_fn=predict_fn, max_concurrent_rpcs=1)

    async def scenario() -> None:
        async with serving(replica) as (_, stub):
            channel = await opened(stub)
            with pytest.raises(NotRun, match="exactly one of url and args_json"):
                await channel.run(ipb.RequestInput())  # malformed: refused, not run
            busy = asyncio.ensure_future(channel.run(task(x="busy", sleep=0.5)))
            await until_set(started)
            assert replica.ingress.gauge.current == 1  # what the replica reports to the autoscaler
            with pytest.raises(NotRun, match="concurrency limit"):
                await channel.run(task(x="over the limit"))
            assert json.loads((await busy).result)["x"] == "busy"
            replica.ingress.closing = True
            with pytest.raises(NotRun, match="stopping"):
                await channel.run(task(x="late"))
            assert channel.usable

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert replica.ran_xs() == ["busy"]


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
    started, stuck = signalled(3)
    replica = Replica(predict_fn=stuck)

    async def scenario() -> None:
        async with serving(replica) as (server, stub):
            channel = await opened(stub)
            out = asyncio.ensure_future(channel.run(task(x="out")))
            await until_set(started)
            await server.stop(None)  # the replica's port closes with the task running
            with pytest.raises(ChannelBroken):
                await out
            assert not channel.usable
            with pytest.raises(NotRun):  # nothing more is sent on a broken channel
                await channel.run(task(x="after"))

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert replica.ran_xs() == ["out"]


def test_nothing_listening_is_not_run() -> None:
    async def scenario() -> None:
        channel = grpc.aio.insecure_channel("127.0.0.1:9")  # the discard port: nothing listens
        try:
            with pytest.raises(NotRun):
                await ReplicaChannel(rgrpc.ReplicaServiceStub(channel), token()).open(1)
        finally:
            await channel.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_an_answer_too_big_for_a_message_fails_only_its_task(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(task_channel, "MAX_ANSWER_BYTES", 2_000)
    replica = Replica()

    async def scenario() -> None:
        async with serving(replica) as (_, stub):
            channel = await opened(stub)
            big = await channel.run(task(x="y" * 5_000))
            assert big.state == ipb.RESULT_STATE_FAILURE and "message limit" in big.traceback
            assert (await channel.run(task(x="small"))).state == ipb.RESULT_STATE_SUCCESS  # the channel goes on

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_a_caller_that_goes_away_leaves_nothing_behind() -> None:
    started, slow = signalled(0.5)
    replica = Replica(predict_fn=slow)

    async def scenario() -> None:
        async with serving(replica) as (_, stub):
            channel = await opened(stub)
            waiting = asyncio.ensure_future(channel.run(task(x="abandoned")))
            await until_set(started)
            waiting.cancel()  # the dispatcher's job is cancelled (the server is stopping)
            with pytest.raises(asyncio.CancelledError):
                await waiting
            assert channel.in_flight == 0
            await asyncio.wait_for(channel.close(), 10)  # does not wait for the abandoned task
            assert await eventually(lambda: replica.ingress.gauge.current == 0)
            started.clear()
            other = await opened(stub)
            running = asyncio.ensure_future(other.run(task(x="cut off")))
            await until_set(started)
            assert replica.ingress.gauge.current == 1
            other.cancel()  # the server stops with a channel open and a task running on it
            with pytest.raises(ChannelBroken):
                await running
            # The replica's load falls back once that task ends, though nobody reads its answer.
            assert await eventually(lambda: replica.ingress.gauge.current == 0)
            assert replica.ran_xs() == ["abandoned", "cut off"]

    asyncio.run(asyncio.wait_for(scenario(), 30))


# ---- DirectCalls: choosing a replica and keeping its channel ---------------------------------------


@dataclass
class RouteTable:
    """What the server's router answers for an endpoint (replica addresses from the GCS and a token
    it mints); here the test says it, so the replicas can be plain gRPC servers on loopback."""

    routes: dict[str, tuple[tuple[str, ...], str]] = field(default_factory=dict)
    replica_ca_pem: str = ""  # plaintext replicas

    async def replica_route(self, endpoint_id: str, app_name: str) -> tuple[tuple[str, ...], str] | None:
        return self.routes.get(endpoint_id)


@asynccontextmanager
async def replicas(*members: Replica) -> AsyncIterator[list[tuple[grpc.aio.Server, str]]]:
    servers = []
    try:
        for member in members:
            server = grpc.aio.server()
            rgrpc.add_ReplicaServiceServicer_to_server(CountedServicer(member), server)
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            servers.append((server, f"127.0.0.1:{port}"))
        yield servers
    finally:
        for server, _ in servers:
            await server.stop(None)
        for member in members:
            member.executor.shutdown(wait=False)


def payload(**args: Any) -> InferenceRequest:
    return InferenceRequest(args_json=json.dumps(args))


def test_direct_calls_share_one_channel_per_replica_and_spread_the_load() -> None:
    first, second = Replica(), Replica()

    async def scenario() -> None:
        async with replicas(first, second) as servers:
            table = RouteTable({"e1": (tuple(address for _, address in servers), token())})
            calls = DirectCalls(table)  # type: ignore[arg-type]
            answers = await asyncio.gather(
                *(calls.predict("e1", "ep", "app", payload(x=i, sleep=0.05)) for i in range(20))
            )
            assert [json.loads(str(a.result))["x"] for a in answers] == list(range(20))  # type: ignore[union-attr]
            await calls.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert (first.opened, second.opened) == (1, 1)  # many concurrent first uses, one opening each
    assert len(first.ran) > 0 and len(second.ran) > 0 and len(first.ran) + len(second.ran) == 20


def test_direct_calls_say_which_tasks_never_ran_and_which_may_have() -> None:
    busy = Replica(max_concurrent_rpcs=0)  # refuses everything: at its limit
    dying_started, stuck = signalled(5)
    dying = Replica(predict_fn=stuck)

    async def scenario() -> None:
        async with replicas(busy, dying) as [(_, busy_address), (dying_server, dying_address)]:
            table = RouteTable({"busy": ((busy_address,), token()), "dying": ((dying_address,), token())})
            calls = DirectCalls(table)  # type: ignore[arg-type]
            assert await calls.predict("busy", "ep", "app", payload(x=1)) is None  # refused: use Serve
            assert await calls.predict("busy", "ep", "app", payload(x=2)) is None  # skipped for a while
            out = asyncio.ensure_future(calls.predict("dying", "ep", "app", payload(x=3)))
            await until_set(dying_started)
            await dying_server.stop(None)
            with pytest.raises(ReplicaDied):  # it may have run: a counted attempt
                await out
            table.routes["gone"] = (("127.0.0.1:9",), token())  # nothing listens there
            assert await calls.predict("gone", "ep", "app", payload(x=4)) is None
            await calls.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert busy.ran == [] and busy.opened == 1  # the skip spared it the second task


def test_direct_calls_renew_channels_with_the_token_and_prune_per_endpoint() -> None:
    started, predict_fn = signalled()
    first, second = Replica(predict_fn=predict_fn), Replica()

    async def scenario() -> None:
        async with replicas(first, second) as [(_, first_address), (_, second_address)]:
            old, new = mint(SECRET, "e1", 300)[0], mint(SECRET, "e1", 600)[0]
            table = RouteTable({"a": ((first_address,), old), "b": ((second_address,), token())})
            calls = DirectCalls(table)  # type: ignore[arg-type]
            assert await calls.predict("b", "ep", "app", payload(x="b")) is not None
            long = asyncio.ensure_future(calls.predict("a", "ep", "app", payload(x="long", sleep=0.5)))
            await until_set(started)
            table.routes["a"] = ((first_address,), new)  # the router renewed the token
            assert await calls.predict("a", "ep", "app", payload(x="renewed")) is not None
            assert first.opened == 2
            assert json.loads(str((await long).result))["x"] == "long"  # type: ignore[union-attr]  # the old channel finished its task
            table.routes["a"] = ((), new)  # endpoint a's replica left its route; b's did not change
            assert await calls.predict("a", "ep", "app", payload(x="none")) is None
            assert await calls.predict("b", "ep", "app", payload(x="b again")) is not None
            assert (second.opened, second.closed) == (1, 0)  # b's channel was not pruned with a's route
            # Both of a's channels end: the old one renewed away, the new one pruned.
            assert await eventually(lambda: first.closed == 2)
            await calls.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
