"""Streaming endpoints driven through the SDK as a user drives them (issue #13): values arrive as
the predict function yields them, on the direct route and through the server; stopping early in
any way (break, close(), the timeout, a client process that dies) closes the generator in the
replica and frees its slot; a slow reader holds the generator back; open streams scale the
endpoint; owners, API keys and route tokens are checked; every predict form streams, and the same
generators answer lists on sync and async endpoints; the CLI prints one line per value.
Real server, real Ray cluster, real replicas; SQLite (the backend does not touch this path)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import launch
import pytest
from launch.v1 import inference_pb2 as ipb
from launch.v1 import inference_pb2_grpc as igrpc

from tests.integration.test_cli import run as run_cli
from tests.integration.test_direct_route import wait_route
from tests.integration.test_endpoints import ENV, SMALL, args, client_for, wait_for, wait_status
from tests.integration.test_streaming_server import make_counter
from tests.server_fixtures import serving_server_fixture
from tests.support import BIN, REPO, ServerHandle

# One call in flight per replica beyond per_worker, so a stream that kept its slot after it was
# stopped makes the next one wait or leave the direct route (assert_slot_free).
server = serving_server_fixture("streaming-sdk", "q{dir}", LAUNCH_MAX_ONGOING_REQUESTS="1")

# How often the tests look for the file a generator's `finally` writes.
POLL_S = 0.01


def make_streams() -> Callable:
    """make_counter's generator, or with `pad` a flood: `n` values of `pad` bytes each, as fast as
    the stream takes them, the count yielded so far kept in the file `record` (replaced whole, so
    a reader never sees it half written)."""
    count = make_counter()

    def streams(  # type: ignore[no-untyped-def]
        n: int, pause: float = 0.0, fail_after: int = -1, closed_at: str = "", pad: int = 0, record: str = ""
    ):
        import os

        if not pad:
            yield from count(n, pause, fail_after, closed_at)
            return
        for i in range(n):
            if record:
                with open(record + ".tmp", "w") as out:
                    out.write(str(i + 1))
                os.replace(record + ".tmp", record)
            yield {"i": i, "pad": "x" * pad}

    return streams


def make_async_gen() -> Callable:
    async def agen(n: int, pause: float = 0.0):  # type: ignore[no-untyped-def]
        import asyncio

        for i in range(n):
            if i and pause:
                await asyncio.sleep(pause)
            yield {"i": i, "async": True}

    return agen


def make_async_fn() -> Callable:
    async def afn(x: int) -> dict:
        import asyncio

        await asyncio.sleep(0.01)
        return {"x": x, "async": True}

    return afn


@pytest.fixture(scope="module")
def endpoints(server: ServerHandle) -> Iterator[dict[str, launch.Endpoint]]:
    """ "main": the streaming endpoint most tests use, one replica with one slot; "other": an async
    generator on a second streaming endpoint; the same generator as "main" on a sync and an async
    endpoint."""
    client = client_for(server)
    streams = client.create_model_bundle("streams", ENV, predict_fn_or_cls=make_streams(), requirements=[])
    agen = client.create_model_bundle("agen", ENV, predict_fn_or_cls=make_async_gen(), requirements=[])
    one = {**SMALL, "min_workers": 1, "max_workers": 1}
    made = {
        "main": client.create_model_endpoint("main", streams, **one, per_worker=1, endpoint_type="streaming"),
        "other": client.create_model_endpoint("other", agen, **one, endpoint_type="streaming"),
        "sync-list": client.create_model_endpoint("sync-list", streams, **one),
        "async-list": client.create_model_endpoint("async-list", streams, **one, endpoint_type="async"),
    }
    for ep in made.values():
        wait_status(ep, "READY")
    for name in ("main", "other"):
        wait_route(server, name)
    yield made
    for ep in made.values():
        client.delete_model_endpoint(ep)


def in_flight(client: launch.LaunchClient) -> int:
    """Requests this client has open on replicas over the direct route."""
    return sum(r.in_flight for r in client._direct._replicas.values())  # noqa: SLF001


def arrivals(stream: Iterator[launch.EndpointResponse]) -> list[tuple[float, str]]:
    """Each response's arrival (seconds after the first) and result."""
    got = [(time.monotonic(), r.result) for r in stream]
    return [(t - got[0][0], result) for t, result in got]


def assert_paced(got: list[tuple[float, str]], n: int, pause: float) -> None:
    """Value k arrived about k pauses after the first: passed through as yielded, not at the end."""
    assert [result for _, result in got] == [f'{{"i": {i}}}' for i in range(n)]
    for k, (t, _) in enumerate(got):
        assert k * pause - 0.03 <= t <= k * pause + 0.15, [round(t, 3) for t, _ in got]


def wait_closed(marker: Path, since: float, within: float) -> float:
    """Seconds from `since` until the generator's `finally` wrote `marker`; fails past `within`."""
    deadline = since + within + 5
    while not marker.exists():
        assert time.monotonic() < deadline, f"the generator was not closed ({marker.name})"
        time.sleep(POLL_S)
    took = time.monotonic() - since
    assert took <= within + POLL_S, f"the generator was closed {took:.3f} s after the stream was stopped"
    return took


def assert_slot_free(client: launch.LaunchClient, ep: launch.StreamingEndpoint) -> None:
    """A new stream starts at once on the direct route: the replica's one slot is free again (a
    held slot makes the replica refuse the call, and the SDK would go through the server)."""
    started = time.monotonic()
    with ep.predict(args(n=2), timeout=30) as stream:
        first = next(stream)
        waited = time.monotonic() - started
        direct = in_flight(client)
        rest = [r.result for r in stream]
    assert [first.result, *rest] == ['{"i": 0}', '{"i": 1}']
    assert waited < 1.0, f"the next stream waited {waited:.2f} s"
    assert direct == 1, "the next stream did not take the direct route"


# ---- values pass through as yielded ------------------------------------------------------------


def test_values_arrive_as_yielded_on_the_direct_route(server: ServerHandle, endpoints) -> None:  # type: ignore[no-untyped-def]
    client = client_for(server)
    ep = client.get_model_endpoint("main")
    assert isinstance(ep, launch.StreamingEndpoint)
    address = wait_route(server, "main").replica_addresses[0]
    seen: list[int] = []

    def watched() -> Iterator[launch.EndpointResponse]:
        with ep.predict(args(n=5, pause=0.1), timeout=60) as stream:
            for response in stream:
                seen.append(in_flight(client))
                yield response

    assert_paced(arrivals(watched()), 5, 0.1)
    assert seen == [1] * 5  # each value came over the one-hop call the client had open
    used = client._direct._replicas  # noqa: SLF001
    assert address in used and used[address].in_flight == 0


def test_values_arrive_as_yielded_through_the_server(server: ServerHandle, endpoints) -> None:  # type: ignore[no-untyped-def]
    client = launch.LaunchClient(api_key=server.key_for("alice"), endpoint=server.address, direct_route=False)
    assert client._direct is None  # noqa: SLF001
    ep = client.get_model_endpoint("main")
    with ep.predict(args(n=5, pause=0.1), timeout=60) as stream:  # type: ignore[union-attr]
        assert_paced(arrivals(stream), 5, 0.1)


def test_an_async_generator_streams_as_it_yields(server: ServerHandle, endpoints) -> None:  # type: ignore[no-untyped-def]
    ep = client_for(server).get_model_endpoint("other")
    with ep.predict(args(n=3, pause=0.3), timeout=60) as stream:  # type: ignore[union-attr]
        got = arrivals(stream)
    assert [json.loads(result) for _, result in got] == [{"i": i, "async": True} for i in range(3)]
    for k, (t, _) in enumerate(got):
        assert k * 0.3 - 0.03 <= t <= k * 0.3 + 0.15, [round(t, 3) for t, _ in got]


# ---- stopping early closes the generator in the replica ----------------------------------------


def test_break_closes_the_generator(server: ServerHandle, endpoints, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client = client_for(server)
    ep = client.get_model_endpoint("main")
    marker = tmp_path / "closed"
    for response in ep.predict(args(n=1000, pause=0.05, closed_at=str(marker)), timeout=60):  # type: ignore[union-attr]
        assert response.result == '{"i": 0}'
        assert in_flight(client) == 1
        break
    wait_closed(marker, time.monotonic(), 0.1)
    assert_slot_free(client, ep)  # type: ignore[arg-type]


def test_close_closes_the_generator(server: ServerHandle, endpoints, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client = client_for(server)
    ep = client.get_model_endpoint("main")
    marker = tmp_path / "closed"
    stream = ep.predict(args(n=1000, pause=0.05, closed_at=str(marker)), timeout=60)  # type: ignore[union-attr]
    assert [next(stream).result, next(stream).result] == ['{"i": 0}', '{"i": 1}']
    assert in_flight(client) == 1 and not marker.exists()
    stream.close()
    wait_closed(marker, time.monotonic(), 0.1)
    assert list(stream) == []  # closed: iteration ends
    assert_slot_free(client, ep)  # type: ignore[arg-type]


def test_the_timeout_closes_the_generator(server: ServerHandle, endpoints, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client = client_for(server)
    ep = client.get_model_endpoint("main")
    marker = tmp_path / "closed"
    got: list[str] = []
    started = time.monotonic()
    with pytest.raises(launch.DeadlineExceededError):
        for response in ep.predict(args(n=1000, pause=0.05, closed_at=str(marker)), timeout=1.5):  # type: ignore[union-attr]
            got.append(response.result)
    ended = time.monotonic()
    assert 1.4 <= ended - started <= 2.5
    assert 10 <= len(got) <= 40 and got[:2] == ['{"i": 0}', '{"i": 1}']  # values flowed until then
    wait_closed(marker, ended, 0.1)
    assert_slot_free(client, ep)  # type: ignore[arg-type]


CLIENT_SCRIPT = """
import json, sys, time, launch
client = launch.LaunchClient(api_key=sys.argv[1], endpoint=sys.argv[2])
request = launch.EndpointRequest(args={"n": 100000, "pause": 0.05, "closed_at": sys.argv[3]}, return_pickled=False)
for response in client.get_model_endpoint("main").predict(request, timeout=120):
    direct = sum(r.in_flight for r in client._direct._replicas.values())
    print(json.dumps({"result": response.result, "direct": direct}), flush=True)
    time.sleep(600)
"""


def test_a_client_process_that_dies_closes_the_generator(server: ServerHandle, endpoints, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "closed"
    command = [sys.executable, "-c", CLIENT_SCRIPT, server.key_for("alice"), server.address, str(marker)]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "the client printed nothing"
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert json.loads(line) == {"result": '{"i": 0}', "direct": 1}, line
        time.sleep(0.3)
        assert not marker.exists()
        os.kill(proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        proc.wait(10)
        wait_closed(marker, killed, 2.0)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    client = client_for(server)
    assert_slot_free(client, client.get_model_endpoint("main"))  # type: ignore[arg-type]


# ---- backpressure ------------------------------------------------------------------------------


@pytest.mark.parametrize("direct", [True, False], ids=["direct-route", "through-server"])
def test_a_slow_reader_holds_the_generator_back(server: ServerHandle, endpoints, tmp_path: Path, direct: bool) -> None:  # type: ignore[no-untyped-def]
    """20,000 values of 4 KiB (80 MiB): only gRPC flow control (receive windows of a few MiB:
    the SDK's, and through the server also the server's, fixed at 256 KiB) and a small read-ahead
    lie between the generator and a reader that stops, so the generator comes to a stop far behind
    (within a few seconds: the windows fill at the stream's pace) and stays there; all values
    still come, in order."""
    client = launch.LaunchClient(api_key=server.key_for("alice"), endpoint=server.address, direct_route=direct)
    ep = client.get_model_endpoint("main")
    record = tmp_path / "yielded"
    total = 20_000
    with ep.predict(args(n=total, pad=4096, record=str(record)), timeout=120) as stream:  # type: ignore[union-attr]
        first = json.loads(next(stream).result)
        counts = [int(record.read_text())]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (len(counts) >= 3 and counts[-1] == counts[-3]):
            time.sleep(0.5)
            counts.append(int(record.read_text()))  # the generator's count, every 0.5 s
        values = [first, *(json.loads(r.result) for r in stream)]
    assert len(counts) >= 3 and counts[-1] == counts[-3], f"the generator never stopped: {counts}"
    assert counts[-1] < 2_000, f"it stopped, but {counts[-1]} values ahead of a reader that took one: {counts}"
    assert [v["i"] for v in values] == list(range(total))
    assert all(v["pad"] == "x" * 4096 for v in values)
    assert int(record.read_text()) == total


# ---- scaling -----------------------------------------------------------------------------------


def test_open_streams_scale_the_endpoint_from_zero(server: ServerHandle, endpoints) -> None:  # type: ignore[no-untyped-def]
    """per_worker=1: the first stream waits while a replica starts; two open streams are two
    requests in flight (one on the direct route, one through the server once the replica's port
    is full), so the endpoint grows to its two workers."""
    client = client_for(server)
    ep = client.create_model_endpoint(
        "scaling", "streams", **SMALL, endpoint_type="streaming", min_workers=0, max_workers=2, per_worker=1
    )
    try:
        wait_status(ep, "READY")
        assert ep.worker_settings()["available_workers"] == 0
        assert [r.result for r in ep.predict(args(n=3), timeout=120)] == ['{"i": 0}', '{"i": 1}', '{"i": 2}']
        streams: list[launch.EndpointResponseStream] = []
        counts = [0, 0]
        errors: list[BaseException] = []

        def read(index: int) -> None:
            try:
                for _ in streams[index]:
                    counts[index] += 1
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        for _ in range(2):
            streams.append(ep.predict(args(n=100000, pause=0.1), timeout=120))
        threads = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(2)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: ep.worker_settings()["available_workers"] == 2, 60, "two workers")
            wait_for(lambda: all(counts), 30, f"both streams to have values ({counts})")
        finally:
            for stream in streams:
                stream.close()
            for t in threads:
                t.join(30)
        assert not [t for t in threads if t.is_alive()], "a reader did not see its stream end"
        assert not errors, errors
    finally:
        client.delete_model_endpoint(ep)
    wait_for(lambda: client.get_model_endpoint("scaling") is None, 60, "the endpoint to go")


# ---- isolation and auth ------------------------------------------------------------------------


def test_other_owners_and_bad_keys_are_refused(server: ServerHandle, endpoints) -> None:  # type: ignore[no-untyped-def]
    main = endpoints["main"].model_endpoint
    bob = client_for(server, "bob")
    assert bob.get_model_endpoint("main") is None
    with pytest.raises(launch.NotFoundError):
        next(launch.StreamingEndpoint(main, bob).predict(args(n=1), timeout=30))
    prefix, key_id, _ = server.key_for("alice").split("_", 2)
    bad = launch.LaunchClient(api_key=f"{prefix}_{key_id}_wrongsecret", endpoint=server.address)
    with pytest.raises(launch.UnauthenticatedError):
        bad.get_model_endpoint("main")
    with pytest.raises(launch.UnauthenticatedError):
        next(launch.StreamingEndpoint(main, bad).predict(args(n=1), timeout=30))


def direct_stream(address: str, token: str, name: str, return_pickled: bool = False) -> tuple[list[str], dict]:
    """PredictStream on a replica's own port: the results and the initial metadata."""
    with grpc.insecure_channel(address) as channel:
        request = ipb.PredictStreamRequest(
            endpoint_name=name, input=ipb.RequestInput(args_json='{"n": 2}', return_pickled=return_pickled)
        )
        call = igrpc.InferenceServiceStub(channel).PredictStream(
            request, metadata=(("authorization", f"Bearer {token}"),), timeout=30
        )
        results = [r.result for m in call for r in (m.result, *m.more)]
        return results, dict(call.initial_metadata())


def test_replica_ports_check_route_tokens_on_streams(server: ServerHandle, endpoints) -> None:  # type: ignore[no-untyped-def]
    main, other = wait_route(server, "main"), wait_route(server, "other")
    address = other.replica_addresses[0]
    results, header = direct_stream(address, other.route_token, "other")
    assert header.get("launch-accepted") == "1"
    assert [json.loads(r) for r in results] == [{"i": 0, "async": True}, {"i": 1, "async": True}]
    for token, why in [
        ("", "not a route token"),
        (main.route_token, "another endpoint"),  # endpoint A's token on endpoint B's replica
        (other.route_token[:-4] + "0000", "signature"),
        (server.key_for("alice"), "not a route token"),
    ]:
        with pytest.raises(grpc.RpcError) as err:
            direct_stream(address, token, "other")
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, token
        assert why in err.value.details()
    with pytest.raises(grpc.RpcError) as err:  # a good token for the port, naming another endpoint
        direct_stream(address, other.route_token, "main")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        direct_stream(address, other.route_token, "other", return_pickled=True)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as err:
        request = ipb.PredictRequest(endpoint_name="other", input=ipb.RequestInput(args_json='{"n": 1}'))
        metadata = (("authorization", f"Bearer {other.route_token}"),)
        igrpc.InferenceServiceStub(channel).Predict(request, metadata=metadata, timeout=30)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "PredictStream" in err.value.details()


# ---- the same generators on sync and async endpoints; every predict form ----------------------


def test_generators_answer_lists_on_sync_and_async_endpoints(server: ServerHandle, endpoints) -> None:  # type: ignore[no-untyped-def]
    listed = [{"i": 0}, {"i": 1}, {"i": 2}]
    response = endpoints["sync-list"].predict(args(n=3), timeout=60)
    assert response.status == "SUCCESS" and json.loads(response.result) == listed
    response = endpoints["async-list"].predict(args(n=3)).get(timeout=60)
    assert response.status == "SUCCESS" and json.loads(response.result) == listed


def test_every_predict_form_streams(server: ServerHandle, endpoints, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """async def functions and async generators on each endpoint type; a class whose __call__ is
    a generator, a load_predict_fn returning one, and a zip bundle's generator on streaming ones."""
    client = client_for(server)

    class Gen:
        """A callable class: one instance per replica, its __call__ a generator."""

        def __init__(self) -> None:
            self.calls = 0

        def __call__(self, n: int):  # type: ignore[no-untyped-def]
            self.calls += 1
            for i in range(n):
                yield {"i": i, "call": self.calls}

    def load_predict_fn(model, app_config=None):  # type: ignore[no-untyped-def]
        def predict(n: int):  # type: ignore[no-untyped-def]
            yield from (model["base"] + i for i in range(n))

        return predict

    root = tmp_path / "zipped"
    (root / "gen_module").mkdir(parents=True)
    (root / "gen_module" / "__init__.py").write_text("")
    (root / "gen_module" / "inference.py").write_text(
        "def load_model():\n    return {'offset': 100}\n\n"
        "def f(model, app_config=None):\n"
        "    def predict(n):\n"
        "        for i in range(n):\n"
        "            yield i + model['offset']\n"
        "    return predict\n"
    )
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n")
    afn = client.create_model_bundle("afn", ENV, predict_fn_or_cls=make_async_fn(), requirements=[])
    bundles = {
        "cls": client.create_model_bundle("gen-cls", ENV, predict_fn_or_cls=Gen, requirements=[]),
        "loader": client.create_model_bundle(
            "gen-loader", ENV, load_predict_fn=load_predict_fn, model={"base": 10}, requirements=[]
        ),
        "zip": client.create_model_bundle_from_dirs(
            "gen-zip",
            [str(root / "gen_module")],
            str(requirements),
            ENV,
            "gen_module.inference.f",
            "gen_module.inference.load_model",
        ),
    }
    one = {**SMALL, "min_workers": 1, "max_workers": 1}
    made = {
        "afn-sync": client.create_model_endpoint("afn-sync", afn, **one),
        "afn-async": client.create_model_endpoint("afn-async", afn, **one, endpoint_type="async"),
        "afn-stream": client.create_model_endpoint("afn-stream", afn, **one, endpoint_type="streaming"),
        "agen-sync": client.create_model_endpoint("agen-sync", "agen", **one),
        "agen-async": client.create_model_endpoint("agen-async", "agen", **one, endpoint_type="async"),
        **{
            name: client.create_model_endpoint(f"gen-{name}", bundle, **one, endpoint_type="streaming")
            for name, bundle in bundles.items()
        },
    }
    try:
        for ep in made.values():
            wait_status(ep, "READY", timeout=120)

        def streamed(name: str, **kw: object) -> list[object]:
            with made[name].predict(args(**kw), timeout=60) as stream:  # type: ignore[union-attr]
                responses = list(stream)
            assert all(r.status == "SUCCESS" for r in responses), [r.traceback for r in responses]
            return [json.loads(r.result) for r in responses]

        assert made["afn-sync"].predict(args(x=1), timeout=60).result == '{"x": 1, "async": true}'  # type: ignore[union-attr]
        assert made["afn-async"].predict(args(x=2)).get(timeout=60).result == '{"x": 2, "async": true}'  # type: ignore[union-attr]
        assert streamed("afn-stream", x=3) == [{"x": 3, "async": True}]
        agen_list = [{"i": 0, "async": True}, {"i": 1, "async": True}]
        assert json.loads(made["agen-sync"].predict(args(n=2), timeout=60).result) == agen_list  # type: ignore[union-attr]
        assert json.loads(made["agen-async"].predict(args(n=2)).get(timeout=60).result) == agen_list  # type: ignore[union-attr]
        assert streamed("cls", n=2) == [{"i": 0, "call": 1}, {"i": 1, "call": 1}]
        assert streamed("cls", n=1) == [{"i": 0, "call": 2}]  # one instance per replica
        assert streamed("loader", n=3) == [10, 11, 12]
        assert streamed("zip", n=3) == [100, 101, 102]
    finally:
        for ep in made.values():
            client.delete_model_endpoint(ep)


# ---- the CLI -----------------------------------------------------------------------------------


def test_cli_prints_one_line_per_value(server: ServerHandle, endpoints, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env: dict[str, str | None] = {
        "LAUNCH_API_KEY": server.key_for("alice"),
        "LAUNCH_ENDPOINT": server.address,
        "LAUNCH_CONFIG": str(tmp_path / "absent" / "config.json"),
    }
    sent = run_cli(["tasks", "send", "main", "--args", '{"n": 3}'], env)
    assert sent.exit_code == 0, sent.output
    assert sent.stdout.splitlines() == ['{"i": 0}', '{"i": 1}', '{"i": 2}']
    sent = run_cli(["-o", "json", "tasks", "send", "main", "--args", '{"n": 3}'], env)
    assert sent.exit_code == 0, sent.output
    records = [json.loads(line) for line in sent.stdout.splitlines()]
    assert [(r["status"], r["result"]) for r in records] == [("SUCCESS", {"i": i}) for i in range(3)]
    failed = run_cli(["tasks", "send", "main", "--args", '{"n": 5, "fail_after": 2}'], env)
    assert failed.exit_code == 1
    assert failed.stdout.splitlines()[:2] == ['{"i": 0}', '{"i": 1}'] and "failed after 2 values" in failed.stdout
    assert failed.stderr.strip() == "error: request to 'main' finished with status FAILURE"

    # The installed script writes each value as it arrives (a pipe sees it at once).
    command = [str(BIN / "launch"), "tasks", "send", "main", "--args", '{"n": 3, "pause": 0.5}']
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={**os.environ, **env})  # type: ignore[dict-item]
    try:
        lines = [(time.monotonic(), line.strip()) for line in proc.stdout]  # type: ignore[union-attr]
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [line for _, line in lines] == ['{"i": 0}', '{"i": 1}', '{"i": 2}']
    assert lines[1][0] - lines[0][0] > 0.3 and lines[2][0] - lines[1][0] > 0.3
