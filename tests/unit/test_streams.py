"""Generators and async user code in the replica, without Ray: each kind of predict function on the
unary paths (a generator answers the list of its values) and as a stream (replica/streams.py):
values arrive as they are yielded, the generator stays at most READ_AHEAD values ahead of a slow
reader, a reader that stops closes it at once, and async code runs on the replica loop. The direct
route's PredictStream is served over real gRPC on loopback by the listener's servicer."""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cloudpickle
import grpc
import pytest
from launch.packaging import FORM_PREDICT_FN_OR_CLS, pickle_bundle
from launch.v1 import inference_pb2 as ipb
from launch.v1 import inference_pb2_grpc as igrpc

from launch_server.domain.errors import EndpointUnavailable, InvalidArgument
from launch_server.domain.requests import ChunkRequest, InferenceAnswer, InferenceRequest
from launch_server.replica.bundle_runtime import BundleDescriptor, BundleRuntime, RuntimeConfig, current_python_version
from launch_server.replica.call_kinds import CallKind, call_kind_of
from launch_server.replica.calls import ReplicaCalls
from launch_server.replica.deployment import LaunchReplica
from launch_server.replica.listener import DirectConfig, ReplicaListener, _Servicer
from launch_server.replica.replica_loop import ReplicaLoop
from launch_server.replica.streams import READ_AHEAD
from launch_server.serving.replica_streams import ReplicaStreams
from launch_server.storage.local import LocalStorage
from launch_server.wire.headers import ACCEPTED_HEADER
from launch_server.wire.limits import STREAM_MORE_BYTES, STREAM_MORE_MAX
from launch_server.wire.route_tokens import endpoint_key, mint

SECRET = b"test-secret"
DELAY = 0.1


def args(**kwargs: Any) -> InferenceRequest:
    return InferenceRequest(args_json=json.dumps(kwargs))


def values(answers: list[InferenceAnswer]) -> list[Any]:
    assert all(a.succeeded for a in answers), answers
    return [json.loads(a.result) for a in answers]


# ----- predict functions of every kind (pickled by value into real bundles) -----


def plain(n: int) -> list[int]:
    return list(range(n))


def gen(n: int) -> Iterator[int]:
    yield from range(n)


async def coro(n: int) -> list[int]:
    await asyncio.sleep(0)
    return list(range(n))


async def agen(n: int) -> AsyncIterator[int]:
    for i in range(n):
        await asyncio.sleep(0)
        yield i


class AsyncCallable:
    async def __call__(self, n: int) -> list[int]:
        return list(range(n))


class AsyncGenCallable:
    async def __call__(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i


def returns_generator(n: int) -> Iterator[int]:
    return iter(gen(n))  # a plain function: the kind shows only at call time


def returns_coroutine(n: int) -> Any:
    return coro(n)


def test_kinds_are_judged_once_through_partials_and_callable_instances() -> None:
    assert call_kind_of(plain) is CallKind.PLAIN
    assert call_kind_of(gen) is CallKind.GENERATOR
    assert call_kind_of(coro) is CallKind.COROUTINE
    assert call_kind_of(agen) is CallKind.ASYNC_GENERATOR
    assert call_kind_of(AsyncCallable()) is CallKind.COROUTINE
    assert call_kind_of(AsyncGenCallable()) is CallKind.ASYNC_GENERATOR
    assert call_kind_of(functools.partial(functools.partial(agen), n=1)) is CallKind.ASYNC_GENERATOR
    assert call_kind_of(functools.partial(AsyncCallable())) is CallKind.COROUTINE
    assert call_kind_of(returns_generator) is CallKind.PLAIN
    assert call_kind_of(lambda: None) is CallKind.PLAIN


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "storage")


@pytest.fixture
def config(storage: LocalStorage, tmp_path: Path) -> RuntimeConfig:
    return RuntimeConfig(storage_url=storage.root_url, work_dir=str(tmp_path / "work"))


def bundle(storage: LocalStorage, predict: Any) -> BundleDescriptor:
    data, metadata = pickle_bundle(FORM_PREDICT_FN_OR_CLS, predict, None, None, None, None)
    return BundleDescriptor(
        bundle_id="b1",
        name="my-bundle",
        packaging_type="CLOUDPICKLE",
        form=FORM_PREDICT_FN_OR_CLS,
        location=storage.put_bytes("bundles/b1.pkl", data),
        metadata=metadata,
        python_version=current_python_version(),
    )


KINDS = [plain, gen, coro, agen, AsyncCallable(), AsyncGenCallable(), returns_generator, returns_coroutine]


@pytest.mark.parametrize("predict", KINDS, ids=lambda p: getattr(p, "__name__", type(p).__name__))
def test_every_kind_answers_on_every_path(predict: Any, storage: LocalStorage, config: RuntimeConfig) -> None:
    replica = LaunchReplica(bundle(storage, predict).to_dict(), config.to_dict())
    try:

        async def run() -> tuple[Any, ...]:
            one = await replica(args(n=3))
            timed = await replica(args(n=2), timeout_s=30)
            many = await replica.predict_many([args(n=1), args(n=2)])
            many_timed = await replica.predict_many([args(n=1)], timeout_s=30)
            pickled = await replica(InferenceRequest(args_json='{"n": 2}', return_pickled=True))
            chunk = await replica.run_chunk(ChunkRequest((args(n=2), args(n=1)), "json", "batch/j/0"), timeout_s=30)
            streamed = [a async for a in replica.predict_stream(args(n=3))]
            return one, timed, many, many_timed, pickled, chunk, streamed

        one, timed, many, many_timed, pickled, chunk, streamed = asyncio.run(run())
        assert values([one, timed]) == [[0, 1, 2], [0, 1]]
        assert values(many) == [[0], [0, 1]] and values(many_timed) == [[0]]
        assert cloudpickle.loads(storage.read_bytes(pickled.result_url)) == [0, 1]
        location = json.loads(chunk.result)["location"]
        assert json.loads(storage.read_bytes(location)) == [{"result": [0, 1]}, {"result": [0]}]
        if call_kind_of(predict) in (CallKind.GENERATOR, CallKind.ASYNC_GENERATOR) or predict is returns_generator:
            assert values(streamed) == [0, 1, 2]  # one message per value
        else:
            assert values(streamed) == [[0, 1, 2]]  # a returned value is a one-message stream
    finally:
        replica.__del__()


# ----- streams on the replica loop, with predict functions that share state with the test -----


class Harness:
    """A runtime whose predict function is set by the test (not pickled, so it can share events
    and lists with the test), its pool and the replica loop."""

    def __init__(self, storage: LocalStorage, config: RuntimeConfig) -> None:
        self.loop = ReplicaLoop().start()
        self.runtime = BundleRuntime(bundle(storage, plain), config, loop=self.loop)
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="launch-predict")
        self.calls = ReplicaCalls(self.runtime, self.executor, self.loop)

    def serve(self, predict: Callable[..., Any]) -> Harness:
        self.runtime.predict_fn = predict
        self.runtime.kind = call_kind_of(predict)
        return self

    def run(self, coro: Any, timeout: float = 10.0) -> Any:
        return self.loop.submit(coro).result(timeout)

    def read_all(self, request: InferenceRequest, timeout_s: float | None = None) -> list[InferenceAnswer]:
        async def read() -> list[InferenceAnswer]:
            return [a async for a in self.calls.stream(request, timeout_s)]

        return self.run(read())

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.loop.stop()


@pytest.fixture
def harness(storage: LocalStorage, config: RuntimeConfig) -> Iterator[Harness]:
    h = Harness(storage, config)
    yield h
    h.close()


class Probe:
    """Predict functions of both kinds that count what they yield and note when their finally ran."""

    def __init__(self, delay: float = 0.0, step_s: float = 0.005) -> None:
        self.delay = delay
        self.step_s = step_s
        self.produced = 0
        self.finally_at: float | None = None
        self.started = threading.Event()

    def sync(self, n: int) -> Iterator[int]:
        try:
            for i in range(n):
                end = time.monotonic() + self.delay
                self.started.set()
                while time.monotonic() < end:  # short steps: a given-up step stops between them
                    time.sleep(self.step_s)
                self.produced += 1
                yield i
        finally:
            self.finally_at = time.monotonic()

    async def asynchronous(self, n: int) -> AsyncIterator[int]:
        try:
            for i in range(n):
                self.started.set()
                await asyncio.sleep(self.delay)
                self.produced += 1
                yield i
        finally:
            self.finally_at = time.monotonic()


def kinds(probe: Probe) -> list[Callable[..., Any]]:
    return [probe.sync, probe.asynchronous]


@pytest.mark.parametrize("kind", [0, 1], ids=["sync", "async"])
def test_each_value_arrives_when_it_is_yielded(harness: Harness, kind: int) -> None:
    probe = Probe(delay=DELAY)
    harness.serve(kinds(probe)[kind])

    async def read() -> list[float]:
        start = time.monotonic()
        return [time.monotonic() - start async for _ in harness.calls.stream(args(n=5))]

    arrivals = harness.run(read())
    assert len(arrivals) == 5
    for k, at in enumerate(arrivals, start=1):
        assert k * DELAY - 0.02 <= at <= k * DELAY + 0.08, arrivals  # not all at the end


@pytest.mark.parametrize("kind", [0, 1], ids=["sync", "async"])
def test_a_slow_reader_holds_the_generator_at_most_read_ahead_values_ahead(harness: Harness, kind: int) -> None:
    probe = Probe()
    harness.serve(kinds(probe)[kind])

    async def read() -> list[int]:
        leads = []
        async for _ in (stream := harness.calls.stream(args(n=2 * READ_AHEAD + 2))):
            await asyncio.sleep(0.01)  # the generator has all the time it wants to run ahead
            leads.append(probe.produced - (len(leads) + 1))
        await stream.aclose()
        return leads

    leads = harness.run(read())
    assert len(leads) == 2 * READ_AHEAD + 2
    assert max(leads) == READ_AHEAD  # it does read ahead, by no more than that


@pytest.mark.parametrize("kind", [0, 1], ids=["sync", "async"])
def test_aclose_between_values_runs_the_finally_at_once(harness: Harness, kind: int) -> None:
    probe = Probe(delay=0.01)
    harness.serve(kinds(probe)[kind])

    async def read() -> float:
        stream = harness.calls.stream(args(n=100), None)
        await stream.__anext__()
        await asyncio.sleep(READ_AHEAD * 0.01 + 0.5)  # read ahead in full: the generator waits at a yield
        closed = time.monotonic()
        await stream.aclose()
        return closed

    closed = harness.run(read())
    assert probe.finally_at is not None and probe.finally_at - closed < 0.1  # aclose waited for it
    assert probe.produced == 1 + READ_AHEAD


@pytest.mark.parametrize("kind", [0, 1], ids=["sync", "async"])
def test_a_cancelled_reader_closes_the_generator_mid_step(harness: Harness, kind: int) -> None:
    probe = Probe(delay=30.0)  # the first step never finishes by itself
    harness.serve(kinds(probe)[kind])

    async def read() -> float:
        task = asyncio.ensure_future(harness.calls.stream(args(n=1)).__anext__())
        await asyncio.to_thread(probe.started.wait, 5)
        await asyncio.sleep(0.05)
        cancelled = time.monotonic()
        task.cancel()
        await asyncio.wait({task})
        return cancelled

    cancelled = harness.run(read())
    deadline = time.monotonic() + 2
    while probe.finally_at is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert probe.finally_at is not None and probe.finally_at - cancelled < 0.1
    # The pool is free again for the next request.
    harness.serve(plain)
    assert values(harness.read_all(args(n=2))) == [[0, 1]]


@pytest.mark.parametrize("kind", [0, 1], ids=["sync", "async"])
def test_a_raise_mid_stream_is_one_last_failure(harness: Harness, kind: int) -> None:
    def sync(n: int) -> Iterator[int]:
        yield from range(n)
        raise ValueError("broken after the values")

    async def asynchronous(n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i
        raise ValueError("broken after the values")

    harness.serve([sync, asynchronous][kind])
    answers = harness.read_all(args(n=2))
    assert values(answers[:2]) == [0, 1]
    assert len(answers) == 3 and answers[2].state == "FAILURE"
    assert "ValueError: broken after the values" in answers[2].traceback and "Traceback" in answers[2].traceback


@pytest.mark.parametrize("kind", [0, 1], ids=["sync", "async"])
def test_a_value_that_is_not_json_fails_the_stream_and_closes_the_generator(harness: Harness, kind: int) -> None:
    closed: list[bool] = []

    def sync() -> Iterator[Any]:
        try:
            yield 1
            yield {1, 2}
            yield 3
        finally:
            closed.append(True)

    async def asynchronous() -> AsyncIterator[Any]:
        try:
            yield 1
            yield {1, 2}
            yield 3
        finally:
            closed.append(True)

    harness.serve([sync, asynchronous][kind])
    answers = harness.read_all(args())
    assert [a.state for a in answers] == ["SUCCESS", "FAILURE"]
    assert "not JSON-serializable" in answers[1].traceback
    assert closed == [True]


@pytest.mark.parametrize("kind", [0, 1], ids=["sync", "async"])
def test_the_timeout_bounds_the_whole_stream(harness: Harness, kind: int) -> None:
    probe = Probe(delay=0.1)
    harness.serve(kinds(probe)[kind])
    answers = harness.read_all(args(n=1000), timeout_s=0.35)
    assert 2 <= len(answers) <= 5
    assert all(a.succeeded for a in answers[:-1])
    assert answers[-1] == InferenceAnswer.failure("the stream did not finish within its time limit of 0.35 s")
    deadline = time.monotonic() + 2
    while probe.finally_at is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert probe.finally_at is not None


def test_async_code_runs_on_the_replica_loop_and_sync_code_in_the_pool(
    storage: LocalStorage, config: RuntimeConfig
) -> None:
    replica = LaunchReplica(bundle(storage, plain).to_dict(), config.to_dict())
    try:

        async def where() -> str:
            return threading.current_thread().name

        async def where_each() -> AsyncIterator[str]:
            yield threading.current_thread().name

        def where_sync() -> Iterator[str]:
            yield threading.current_thread().name

        def serve(predict: Callable[..., Any]) -> None:
            replica.runtime.predict_fn = predict
            replica.runtime.kind = call_kind_of(predict)

        async def run() -> dict[str, Any]:
            serve(where)
            one = await replica(args())
            many = await replica.predict_many([args(), args()], timeout_s=5)
            chunk = await replica.run_chunk(ChunkRequest((args(),), "json", "batch/j/0"))
            serve(where_each)
            streamed = [a async for a in replica.predict_stream(args())]
            serve(where_sync)
            sync_streamed = [a async for a in replica.predict_stream(args())]
            return {
                "one": json.loads(one.result),
                "many": [json.loads(a.result) for a in many],
                "chunk": json.loads(storage.read_bytes(json.loads(chunk.result)["location"]))[0]["result"],
                "streamed": values(streamed)[0],
                "sync": values(sync_streamed)[0],
                "caller": threading.current_thread().name,
            }

        seen = asyncio.run(run())
        loop_thread = "launch-replica-loop"
        assert seen["one"] == seen["chunk"] == seen["streamed"] == loop_thread
        assert seen["many"] == [loop_thread, loop_thread]
        assert seen["sync"].startswith("launch-predict")
        assert seen["caller"] != loop_thread
    finally:
        replica.__del__()


def test_a_serve_side_reader_that_goes_away_closes_the_generator(storage: LocalStorage, config: RuntimeConfig) -> None:
    """The Serve-handle path (predict_stream, read from another loop): cancelling its reader, as
    Serve does when the caller goes away, closes the user's generator on the replica loop."""
    replica = LaunchReplica(bundle(storage, plain).to_dict(), config.to_dict())
    probe = Probe(delay=30.0)
    replica.runtime.predict_fn = probe.asynchronous
    replica.runtime.kind = call_kind_of(probe.asynchronous)
    try:

        async def run() -> float:
            stream = replica.predict_stream(args(n=3))
            task = asyncio.ensure_future(stream.__anext__())
            await asyncio.to_thread(probe.started.wait, 5)
            cancelled = time.monotonic()
            task.cancel()
            await asyncio.wait({task})
            await stream.aclose()
            return cancelled

        cancelled = asyncio.run(run())
        assert probe.finally_at is not None and probe.finally_at - cancelled < 0.1
    finally:
        replica.__del__()


# ----- the direct route: PredictStream on the replica's port -----


class DirectRoute:
    """The listener's servicer on a gRPC server of the replica loop (start() would also need Ray
    for the node address and the registry), and a client stub."""

    def __init__(self, harness: Harness, endpoint_type: str) -> None:
        self.key = endpoint_key(SECRET, "e1")
        config = DirectConfig("e1", "ep", self.key.hex(), endpoint_type=endpoint_type)
        self.listener = ReplicaListener(
            config, "app", "r1", harness.runtime.predict, harness.executor, calls=harness.calls, loop=harness.loop
        )
        self.harness = harness

        async def start() -> tuple[grpc.aio.Server, int]:
            server = grpc.aio.server()
            igrpc.add_InferenceServiceServicer_to_server(_Servicer(self.listener), server)
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            return server, port

        self.server, port = harness.run(start())
        self.port = port
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = igrpc.InferenceServiceStub(self.channel)
        self.metadata = (("authorization", f"Bearer {mint(SECRET, 'e1', 300)[0]}"),)

    def stream(self, request: ipb.PredictStreamRequest, **kw: Any) -> Any:
        return self.stub.PredictStream(request, metadata=kw.pop("metadata", self.metadata), timeout=10, **kw)

    def close(self) -> None:
        self.channel.close()
        self.harness.run(self.server.stop(None))


def stream_request(name: str = "ep", **input_kw: Any) -> ipb.PredictStreamRequest:
    return ipb.PredictStreamRequest(endpoint_name=name, input=ipb.RequestInput(**input_kw))


@pytest.fixture
def direct(harness: Harness) -> Iterator[DirectRoute]:
    route = DirectRoute(harness, "STREAMING")
    yield route
    route.close()


def test_predict_stream_on_the_direct_route(direct: DirectRoute) -> None:
    probe = Probe(delay=DELAY)
    direct.harness.serve(probe.asynchronous)
    call = direct.stream(stream_request(args_json='{"n": 3}'))
    start = time.monotonic()
    first = next(call)
    assert time.monotonic() - start < 2 * DELAY + 0.1
    assert (ACCEPTED_HEADER, "1") in tuple(call.initial_metadata())
    assert direct.listener.gauge.current == 1  # the open stream counts as one request in flight
    rest = list(call)
    assert [json.loads(m.result.result) for m in [first, *rest]] == [0, 1, 2]
    assert all(m.result.state == ipb.RESULT_STATE_SUCCESS for m in [first, *rest])
    assert call.code() == grpc.StatusCode.OK
    deadline = time.monotonic() + 2
    while direct.listener.gauge.current and time.monotonic() < deadline:
        time.sleep(0.01)
    assert direct.listener.gauge.current == 0


def test_a_failure_is_the_last_message_and_the_call_ends_ok(direct: DirectRoute) -> None:
    def broken(n: int) -> Iterator[int]:
        yield n
        raise RuntimeError("no more")

    direct.harness.serve(broken)
    call = direct.stream(stream_request(args_json='{"n": 7}'))
    results = results_of(list(call))
    assert [r.state for r in results] == [ipb.RESULT_STATE_SUCCESS, ipb.RESULT_STATE_FAILURE]
    assert "RuntimeError: no more" in results[1].traceback
    assert call.code() == grpc.StatusCode.OK


def results_of(messages: list[ipb.PredictStreamResponse]) -> list[ipb.InferenceResult]:
    return [result for m in messages for result in (m.result, *m.more)]


def test_values_waiting_behind_a_slow_sender_travel_together(direct: DirectRoute) -> None:
    """A fast generator read slowly: each message takes along what waited behind its value, at
    most the read-ahead; every value comes once, in order."""
    direct.harness.serve(gen)
    messages = []
    for message in direct.stream(stream_request(args_json='{"n": 200}')):
        messages.append(message)
        time.sleep(0.002)
    assert [json.loads(r.result) for r in results_of(messages)] == list(range(200))
    sizes = [1 + len(m.more) for m in messages]
    assert max(sizes) > 1 and max(sizes) <= READ_AHEAD and len(messages) < 200, sizes


def test_values_taken_together_stay_within_the_byte_budget(harness: Harness) -> None:
    def big(n: int) -> Iterator[str]:
        for _ in range(n):
            yield "x" * 400_000

    harness.serve(big)

    async def read() -> tuple[int, int]:
        stream = harness.calls.stream(args(n=6))
        await stream.__anext__()
        await asyncio.sleep(0.3)  # the rest is made by now
        together = len(stream.take_ready(STREAM_MORE_MAX, STREAM_MORE_BYTES))
        rest = len([a async for a in stream])
        return together, rest

    together, rest = harness.run(read())
    assert (together, rest) == (2, 3)  # 2 x 400 kB of text fit in 1 MiB, a third would not


def test_a_client_that_cancels_closes_the_generator(direct: DirectRoute) -> None:
    probe = Probe(delay=0.05)
    direct.harness.serve(probe.sync)
    call = direct.stream(stream_request(args_json='{"n": 100000}'))
    next(call)
    cancelled = time.monotonic()
    call.cancel()
    deadline = time.monotonic() + 2
    while probe.finally_at is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert probe.finally_at is not None and probe.finally_at - cancelled < 0.1
    deadline = time.monotonic() + 2
    while direct.listener.gauge.current and time.monotonic() < deadline:
        time.sleep(0.01)
    assert direct.listener.gauge.current == 0


def _refused(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        list(call) if not hasattr(call, "result") else call.result()
    return err.value


def test_the_direct_route_checks_token_name_type_and_input(harness: Harness, direct: DirectRoute) -> None:
    harness.serve(gen)
    good = stream_request(args_json='{"n": 1}')
    err = _refused(direct.stream(good, metadata=(("authorization", "Bearer lr1.forged"),)))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    err = _refused(direct.stream(stream_request("other", args_json="{}")))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "endpoint_name" in err.details()
    err = _refused(direct.stream(stream_request(args_json="{}", return_pickled=True)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "input.return_pickled" in err.details()
    err = _refused(direct.stream(stream_request(args_json="[1]")))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    predict = ipb.PredictRequest(endpoint_name="ep", input=ipb.RequestInput(args_json='{"n": 1}'))
    with pytest.raises(grpc.RpcError) as refused:
        direct.stub.Predict(predict, metadata=direct.metadata, timeout=10)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "streaming endpoint" in refused.value.details() and "PredictStream" in refused.value.details()


# ----- the server's relay to the replica's port (serving/replica_streams.py) -----


def relay_for(direct: DirectRoute, token: str | None = None) -> ReplicaStreams:
    address = f"127.0.0.1:{direct.port}"
    token = token if token is not None else mint(SECRET, "e1", 300)[0]

    async def route(endpoint_id: str, app_name: str) -> tuple[tuple[str, ...], str]:
        assert (endpoint_id, app_name) == ("e1", "app")
        return (address,), token

    return ReplicaStreams(route, "")


def test_the_relay_passes_the_replicas_messages_on_and_closes_with_its_reader(direct: DirectRoute) -> None:
    probe = Probe(delay=0.02)
    direct.harness.serve(probe.sync)
    relay = relay_for(direct)

    async def read() -> tuple[list[int], list[int], float]:
        replies = await relay.open("e1", "app", stream_request(args_json='{"n": 3}'), None)
        assert replies is not None
        whole = [json.loads(r.result) async for r in _flat(replies)]
        replies = await relay.open("e1", "app", stream_request(args_json='{"n": 100000}'), None)
        assert replies is not None
        first = [json.loads(r.result) async for r in _flat(replies, limit=1)]
        await replies.aclose()  # the reader stops: the replica's call is cancelled
        closed = time.monotonic()
        await relay.close()
        return whole, first, closed

    whole, first, closed = asyncio.run(read())
    assert whole == [0, 1, 2] and first == [0]
    deadline = time.monotonic() + 2
    while (probe.finally_at is None or probe.finally_at < closed) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert probe.finally_at is not None and probe.finally_at - closed < 0.1


def test_a_relayed_stream_whose_connection_closes_ends_unavailable(direct: DirectRoute) -> None:
    """The server closing its replica connections (stopping, or Ray lost) ends an open relayed
    stream with UNAVAILABLE for its reader, not as a cancellation of the reader's own call."""
    probe = Probe(delay=0.05)
    direct.harness.serve(probe.sync)
    relay = relay_for(direct)

    async def read() -> None:
        replies = await relay.open("e1", "app", stream_request(args_json='{"n": 100000}'), None)
        assert replies is not None
        await anext(replies)
        asyncio.get_running_loop().call_later(0.1, lambda: asyncio.ensure_future(relay.close()))
        async for _ in replies:
            pass

    with pytest.raises(EndpointUnavailable, match="connection to the replica"):
        asyncio.run(read())


def test_a_refusal_before_the_replica_accepts_leaves_the_stream_to_serve(direct: DirectRoute) -> None:
    direct.harness.serve(gen)
    relay = relay_for(direct, token="lr1.forged")

    async def open_twice() -> tuple[Any, Any]:
        first = await relay.open("e1", "app", stream_request(args_json='{"n": 1}'), None)
        second = await relay.open("e1", "app", stream_request(args_json='{"n": 1}'), None)  # skipped now
        await relay.close()
        return first, second

    assert asyncio.run(open_twice()) == (None, None)


def test_an_error_the_replica_answers_before_accepting_is_raised(direct: DirectRoute) -> None:
    direct.harness.serve(gen)
    relay = relay_for(direct)

    async def open_bad() -> None:
        try:
            await relay.open("e1", "app", stream_request("other", args_json="{}"), None)
        finally:
            await relay.close()

    with pytest.raises(InvalidArgument, match="endpoint_name"):  # the replica's own status, passed on
        asyncio.run(open_bad())


async def _flat(replies: Any, limit: int | None = None) -> AsyncIterator[ipb.InferenceResult]:
    count = 0
    async for message in replies:
        for result in (message.result, *message.more):
            yield result
            count += 1
            if limit is not None and count >= limit:
                return


@pytest.mark.parametrize("endpoint_type", ["SYNC", "ASYNC"])
def test_predict_stream_on_a_non_streaming_endpoint_is_refused(harness: Harness, endpoint_type: str) -> None:
    harness.serve(gen)
    route = DirectRoute(harness, endpoint_type)
    try:
        err = _refused(route.stream(stream_request(args_json='{"n": 1}')))
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        predict = ipb.PredictRequest(endpoint_name="ep", input=ipb.RequestInput(args_json='{"n": 2}'))
        answer = route.stub.Predict(predict, metadata=route.metadata, timeout=10)
        assert json.loads(answer.result.result) == [0, 1]  # a generator's unary answer: its list
    finally:
        route.close()


def test_a_chunk_given_up_cancels_its_async_items_on_the_loop(storage: LocalStorage, config: RuntimeConfig) -> None:
    """A batch chunk runs on the pool and waits for async items on the replica loop; past its
    timeout the chunk is given up and the item's coroutine is cancelled, not left running."""
    replica = LaunchReplica(bundle(storage, plain).to_dict(), config.to_dict())
    cancelled: list[float] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(time.monotonic())
            raise

    replica.runtime.predict_fn = slow
    replica.runtime.kind = call_kind_of(slow)
    try:
        answer = asyncio.run(replica.run_chunk(ChunkRequest((args(),), "json", "batch/j/0"), timeout_s=0.3))
        given_up = time.monotonic()
        assert answer == InferenceAnswer.failure("task exceeded its endpoint's task_timeout_seconds=0.3")
        deadline = time.monotonic() + 2
        while not cancelled and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cancelled and cancelled[0] - given_up < 0.1
    finally:
        replica.__del__()
