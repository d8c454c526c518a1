"""Streaming endpoints on the server (issue #13), without Ray: the STREAMING type through
validation, the proto and the database; which call each endpoint type takes (Predict, PredictStream,
tasks, the direct route); and the router's PredictStream over a fake Serve handle: one value read
per message, the Serve call cancelled whenever the stream ends early, Ray's errors translated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from launch.v1 import inference_pb2 as ipb
from launch.v1 import model_endpoint_pb2 as epb

from launch_server.api import auth
from launch_server.api.convert import endpoint_to_proto, settings_from_proto
from launch_server.api.inference import InferenceServicer
from launch_server.domain.endpoints import (
    Endpoint,
    EndpointService,
    EndpointSettings,
    EndpointStatus,
    EndpointType,
    validate_settings,
)
from launch_server.domain.entities import Bundle, BundleForm, PackagingType
from launch_server.domain.errors import (
    DeadlineExceeded,
    EndpointUnavailable,
    FailedPrecondition,
    InvalidArgument,
)
from launch_server.domain.live_endpoints import LiveRoute
from launch_server.domain.requests import InferenceAnswer, InferenceRequest
from launch_server.domain.tasks import TaskInput, TaskService
from launch_server.serving.router import Router
from launch_server.settings import Settings
from launch_server.store.db import make_engine, upgrade
from launch_server.store.endpoint_repository import SqlEndpointRepository
from launch_server.store.repositories import SqlBundleRepository
from launch_server.wire.messages import answers_of_message

NOW = datetime(2026, 12, 2, tzinfo=UTC)
REQUEST = InferenceRequest(args_json='{"n": 3}')


def endpoint(name: str, endpoint_type: EndpointType) -> Endpoint:
    return Endpoint(
        endpoint_id=f"id-{name}",
        owner="alice",
        name=name,
        bundle_id="b1",
        bundle_name="b",
        settings=EndpointSettings(bundle_name="b", endpoint_type=endpoint_type),
        status=EndpointStatus.READY,
        status_reason="",
        generation=1,
        created_at=NOW,
        updated_at=NOW,
    )


ENDPOINTS = {
    "chat": endpoint("chat", EndpointType.STREAMING),
    "echo": endpoint("echo", EndpointType.SYNC),
    "queue": endpoint("queue", EndpointType.ASYNC),
}


# ---- the type itself: validation, proto, database ----------------------------------------------


def test_streaming_settings_validate_and_map_both_ways_to_the_proto() -> None:
    settings = settings_from_proto(epb.ModelEndpoint(bundle_name="b", endpoint_type=epb.ENDPOINT_TYPE_STREAMING))
    assert settings.endpoint_type is EndpointType.STREAMING
    validate_settings(settings)
    assert endpoint_to_proto(ENDPOINTS["chat"]).endpoint_type == epb.ENDPOINT_TYPE_STREAMING
    with pytest.raises(InvalidArgument) as refused:
        settings_from_proto(epb.ModelEndpoint(bundle_name="b"))  # ENDPOINT_TYPE_UNSPECIFIED
    assert refused.value.field == "endpoint.endpoint_type"
    assert "ENDPOINT_TYPE_STREAMING" in str(refused.value)


@pytest.fixture()
def services(tmp_path: Path) -> Iterator[EndpointService]:
    url = f"sqlite:///{tmp_path / 'launch.db'}"
    upgrade(url)
    engine = make_engine(url)
    bundles = SqlBundleRepository(engine)
    bundles.add(
        Bundle(
            bundle_id="b1",
            owner="alice",
            name="b",
            packaging_type=PackagingType.CLOUDPICKLE,
            form=BundleForm.PREDICT_FN_OR_CLS,
            requirements=(),
            env_params={},
            metadata={},
            app_config_json="",
            python_version="",
            location="file:///b",
            size_bytes=1,
            sha256="0" * 64,
            managed_artifact=False,
            created_at=NOW,
        )
    )
    yield EndpointService(SqlEndpointRepository(engine), bundles)
    engine.dispose()


def test_the_database_keeps_a_streaming_endpoint_and_its_type_cannot_change(services: EndpointService) -> None:
    async def scenario() -> None:
        settings = EndpointSettings(bundle_name="b", endpoint_type=EndpointType.STREAMING, min_workers=0)
        await services.create("alice", "chat", settings)
        assert (await services.get("alice", "chat")).settings.endpoint_type is EndpointType.STREAMING
        updated = await services.update("alice", "chat", {"per_worker": 4})
        assert (updated.settings.endpoint_type, updated.settings.per_worker) == (EndpointType.STREAMING, 4)
        with pytest.raises(InvalidArgument, match="endpoint_type cannot change"):
            await services.update("alice", "chat", {"endpoint_type": EndpointType.SYNC})

    asyncio.run(scenario())


# ---- which call each type takes ------------------------------------------------------------------


class FakeLive:
    """The serving layer's live view: every endpoint of ENDPOINTS serves, as app `app-<name>`."""

    ready = True
    error = ""

    def __init__(self, known: dict[str, Endpoint] | None = None) -> None:
        self.known = ENDPOINTS if known is None else known

    def endpoint_for(self, owner: str, name: str) -> Endpoint | None:
        return self.known.get(name) if owner == "alice" else None

    def route(self, endpoint_id: str) -> LiveRoute | None:
        return LiveRoute(f"app-{endpoint_id.removeprefix('id-')}", serving=True, status=EndpointStatus.READY)

    async def wait_ready(self, timeout: float) -> bool:
        return True


class FakeRows:
    """The endpoint table, for names the live view does not know (yet)."""

    def __init__(self, rows: dict[str, Endpoint]) -> None:
        self.rows = rows

    def get(self, owner: str, name: str) -> Endpoint | None:
        return self.rows.get(name)


def test_tasks_are_refused_on_streaming_endpoints_as_on_sync_ones() -> None:
    tasks = TaskService(None, endpoints=None, live=FakeLive(), writer=None)  # type: ignore[arg-type]
    work = [TaskInput(work=REQUEST, callback_url="", client_request_id="")]
    with pytest.raises(FailedPrecondition, match="'chat' is a streaming endpoint: use InferenceService.PredictStream"):
        asyncio.run(tasks.submit("alice", "chat", work))
    with pytest.raises(FailedPrecondition, match="'echo' is sync: call InferenceService.Predict"):
        asyncio.run(tasks.submit("alice", "echo", work))


class FakeStream:
    """A DeploymentResponseGenerator: answers `values` (an Exception among them is raised there),
    each only when asked for, then waits forever when `hang` is set."""

    def __init__(self, values: list[Any], hang: bool = False) -> None:
        self.values, self.hang = list(values), hang
        self.reads = 0
        self.cancelled = False

    def __aiter__(self) -> FakeStream:
        return self

    async def __anext__(self) -> Any:
        if not self.values:
            if self.hang:
                await asyncio.Event().wait()
            raise StopAsyncIteration
        self.reads += 1
        value = self.values.pop(0)
        if isinstance(value, Exception):
            raise value
        return value

    def cancel(self) -> None:
        self.cancelled = True


class FakeHandle:
    """A Serve DeploymentHandle that records how it was called."""

    def __init__(self, stream: FakeStream) -> None:
        self.stream = stream
        self.calls: list[tuple[str, dict[str, Any], tuple[Any, ...], dict[str, Any]]] = []
        self._options: dict[str, Any] = {}
        self._method = "__call__"

    def options(self, **options: Any) -> FakeHandle:
        clone = FakeHandle(self.stream)
        clone.calls, clone._options = self.calls, {**self._options, **options}
        return clone

    def __getattr__(self, method: str) -> FakeHandle:
        clone = self.options()
        clone._method = method
        return clone

    def remote(self, *args: Any, **kwargs: Any) -> FakeStream:
        self.calls.append((self._method, self._options, args, kwargs))
        return self.stream


def router_with(stream: FakeStream, live: FakeLive | None = None, rows: dict[str, Endpoint] | None = None) -> Router:
    # The Serve-handle path: without the direct route the router never looks for replica ports.
    settings = Settings(data_dir=Path("/nonexistent"), direct_route=False)
    router = Router(settings, live or FakeLive(), FakeRows(rows or {}))  # type: ignore[arg-type]
    for name in ENDPOINTS:
        router._handles[f"app-{name}"] = FakeHandle(stream)
    return router


async def collect(messages: AsyncIterator[ipb.PredictStreamResponse]) -> list[InferenceAnswer]:
    return [answer async for message in messages for answer in answers_of_message(message)]


def test_predict_on_a_streaming_endpoint_and_predict_stream_on_the_others_are_refused() -> None:
    router = router_with(FakeStream([]))
    with pytest.raises(FailedPrecondition, match="'chat' is a streaming endpoint: use InferenceService.PredictStream"):
        asyncio.run(router.predict("alice", "chat", REQUEST, 5))
    with pytest.raises(FailedPrecondition, match="'echo' is sync: call InferenceService.Predict"):
        asyncio.run(collect(router.predict_stream("alice", "echo", REQUEST, 5)))
    with pytest.raises(FailedPrecondition, match="'queue' is async: submit tasks"):
        asyncio.run(collect(router.predict_stream("alice", "queue", REQUEST, 5)))


def test_names_the_live_view_does_not_know_get_the_same_type_rules_from_the_database() -> None:
    pending = ENDPOINTS["chat"].replace(status=EndpointStatus.UPDATE_PENDING, status_reason="waiting")
    rows = {**ENDPOINTS, "chat": pending}
    router = router_with(FakeStream([]), live=FakeLive(known={}), rows=rows)
    with pytest.raises(EndpointUnavailable, match="'chat' is UPDATE_PENDING: waiting"):
        asyncio.run(collect(router.predict_stream("alice", "chat", REQUEST, 5)))
    with pytest.raises(FailedPrecondition, match="is a streaming endpoint"):
        asyncio.run(router.predict("alice", "chat", REQUEST, 5))
    with pytest.raises(FailedPrecondition, match="'echo' is sync"):
        asyncio.run(collect(router.predict_stream("alice", "echo", REQUEST, 5)))


def test_the_direct_route_serves_streaming_endpoints_as_sync_ones_but_not_async_ones() -> None:
    router = router_with(FakeStream([]))
    router._settings.direct_route = True
    router._settings.route_secret = "s" * 32

    async def addresses(app_name: str) -> tuple[str, ...]:
        return ("10.0.0.1:7000",)

    router._replica_addresses = addresses  # type: ignore[method-assign]
    for name in ("chat", "echo"):
        route = asyncio.run(router.route("alice", name, "key-1"))
        assert route.addresses == ("10.0.0.1:7000",) and route.token
    with pytest.raises(FailedPrecondition, match="'queue' is async"):
        asyncio.run(router.route("alice", "queue", "key-1"))


# ---- the router's stream ---------------------------------------------------------------------------


def answer(value: str) -> InferenceAnswer:
    return InferenceAnswer(result=value)


def test_each_value_is_read_from_serve_only_when_the_caller_asks_for_it() -> None:
    stream = FakeStream([answer("1"), answer("2"), InferenceAnswer.failure("boom")])
    router = router_with(stream)
    handle = router._handles["app-chat"]

    async def scenario() -> list[InferenceAnswer]:
        answers = router.predict_stream("alice", "chat", REQUEST, 30)
        first = answers_of_message(await anext(answers))
        assert stream.reads == 1  # nothing read ahead of the caller
        rest = await collect(answers)
        return [*first, *rest]

    got = asyncio.run(scenario())
    assert [(a.state, a.result, a.traceback) for a in got] == [
        ("SUCCESS", "1", ""),
        ("SUCCESS", "2", ""),
        ("FAILURE", "", "boom"),
    ]
    [(method, options, args, kwargs)] = handle.calls
    assert (method, options, args, kwargs) == ("predict_stream", {"stream": True}, (REQUEST,), {})
    assert not stream.cancelled  # it ended by itself: nothing to cancel


def test_a_caller_that_stops_early_cancels_the_serve_call() -> None:
    stream = FakeStream([answer("1"), answer("2")])
    router = router_with(stream)

    async def scenario() -> None:
        answers = router.predict_stream("alice", "chat", REQUEST, 30)
        await anext(answers)
        await answers.aclose()

    asyncio.run(scenario())
    assert stream.cancelled and stream.reads == 1


def test_a_caller_that_goes_away_while_waiting_cancels_the_serve_call() -> None:
    stream = FakeStream([answer("1")], hang=True)
    router = router_with(stream)

    async def scenario() -> None:
        reader = asyncio.create_task(collect(router.predict_stream("alice", "chat", REQUEST, 30)))
        await asyncio.sleep(0.05)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader

    asyncio.run(scenario())
    assert stream.cancelled


def test_the_deadline_bounds_the_whole_stream() -> None:
    stream = FakeStream([answer("1")], hang=True)
    router = router_with(stream)
    got: list[InferenceAnswer] = []

    async def scenario() -> None:
        async for message in router.predict_stream("alice", "chat", REQUEST, 0.2):
            got.extend(answers_of_message(message))

    with pytest.raises(DeadlineExceeded, match="'chat' did not finish within the deadline"):
        asyncio.run(scenario())
    assert [a.result for a in got] == ["1"] and stream.cancelled


def test_ray_errors_are_translated_after_the_values_already_sent() -> None:
    class ActorDiedError(Exception):
        pass

    stream = FakeStream([answer("1"), ActorDiedError("gone")])
    router = router_with(stream)
    got: list[InferenceAnswer] = []

    async def scenario() -> None:
        async for message in router.predict_stream("alice", "chat", REQUEST, 30):
            got.extend(answers_of_message(message))

    with pytest.raises(EndpointUnavailable, match="the worker serving 'chat' died"):
        asyncio.run(scenario())
    assert [a.result for a in got] == ["1"] and stream.cancelled


# ---- the servicer ----------------------------------------------------------------------------------


class FakeContext:
    def time_remaining(self) -> float:
        return 30.0


def servicer_stream(router: Router | None, request: ipb.PredictStreamRequest) -> list[ipb.PredictStreamResponse]:
    async def scenario() -> list[ipb.PredictStreamResponse]:
        auth.current_owner.set("alice")
        servicer = InferenceServicer(router)
        return [m async for m in servicer.PredictStream(request, FakeContext())]  # type: ignore[arg-type]

    return asyncio.run(scenario())


def test_predict_stream_sends_one_message_per_answer() -> None:
    router = router_with(FakeStream([answer('{"token": "a"}'), answer('{"token": "b"}')]))
    request = ipb.PredictStreamRequest(endpoint_name="chat", input=ipb.RequestInput(args_json='{"n": 2}'))
    messages = servicer_stream(router, request)
    assert [(m.result.state, m.result.result) for m in messages] == [
        (ipb.RESULT_STATE_SUCCESS, '{"token": "a"}'),
        (ipb.RESULT_STATE_SUCCESS, '{"token": "b"}'),
    ]


def test_predict_stream_refuses_return_pickled_and_a_missing_input() -> None:
    router = router_with(FakeStream([answer("1")]))
    pickled = ipb.PredictStreamRequest(
        endpoint_name="chat", input=ipb.RequestInput(args_json="{}", return_pickled=True)
    )
    with pytest.raises(InvalidArgument) as refused:
        servicer_stream(router, pickled)
    assert refused.value.field == "input.return_pickled"
    with pytest.raises(InvalidArgument) as missing:
        servicer_stream(router, ipb.PredictStreamRequest(endpoint_name="chat"))
    assert missing.value.field == "input"


def test_the_reconciler_tells_the_replica_its_endpoint_type() -> None:
    from launch_server.replica.listener import DirectConfig
    from launch_server.serving.reconciler import Reconciler

    settings = Settings(data_dir=Path("/nonexistent"))
    settings.direct_route, settings.route_secret = True, "s" * 32
    reconciler = Reconciler(settings, None, None)  # type: ignore[arg-type]
    for name, wanted in (("chat", "STREAMING"), ("echo", "SYNC"), ("queue", "ASYNC")):
        config = reconciler.direct_config(ENDPOINTS[name], 10)
        assert config is not None and DirectConfig.from_dict(config).endpoint_type == wanted
