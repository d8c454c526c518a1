"""StreamingEndpoint in the SDK against hand-written gRPC servers on free loopback ports: a
"server" (ModelEndpointService, InferenceService.PredictStream) and a "replica" (its own
InferenceService, reached over the direct route). Each test scripts what PredictStream does, so
it can check what a real replica cannot be made to do on cue: values sent only when the test says
(laziness), a call held open until the client goes away (cancellation), a replica that refuses
before or fails after accepting (fallback), a server that sends past its FAILURE message."""

from __future__ import annotations

import gc
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
import launch
import pytest
from google.protobuf import timestamp_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from launch.direct_route import ACCEPTED_HEADER
from launch.v1 import inference_pb2 as ipb
from launch.v1 import inference_pb2_grpc as igrpc
from launch.v1 import model_endpoint_pb2 as epb
from launch.v1 import model_endpoint_pb2_grpc as egrpc

Handler = Callable[[ipb.PredictStreamRequest, grpc.ServicerContext], Iterator[ipb.PredictStreamResponse]]
ROUTE_TOKEN = "route-token-1"
WAIT_S = 5.0


def ok(value: Any) -> ipb.PredictStreamResponse:
    return ipb.PredictStreamResponse(
        result=ipb.InferenceResult(state=ipb.RESULT_STATE_SUCCESS, result=json.dumps(value))
    )


def failed(traceback: str) -> ipb.PredictStreamResponse:
    return ipb.PredictStreamResponse(result=ipb.InferenceResult(state=ipb.RESULT_STATE_FAILURE, traceback=traceback))


def values(*items: Any) -> Handler:
    def handler(request: Any, context: Any) -> Iterator[ipb.PredictStreamResponse]:
        for item in items:
            yield ok(item)

    return handler


def refuse(code: grpc.StatusCode, *, accepted: bool = False, after: tuple[Any, ...] = ()) -> Handler:
    """Sends `after`'s values (and the accepted header first, if asked), then fails with `code`."""

    def handler(request: Any, context: Any) -> Iterator[ipb.PredictStreamResponse]:
        if accepted:
            context.send_initial_metadata(((ACCEPTED_HEADER, "1"),))
        for item in after:
            yield ok(item)
        context.abort(code, f"scripted {code.name}")

    return handler


@dataclass
class StreamService(igrpc.InferenceServiceServicer):
    """One InferenceService whose PredictStream runs the test's handler; records each call."""

    handler: Handler = field(default_factory=lambda: values("server"))
    calls: list[tuple[ipb.PredictStreamRequest, dict[str, str]]] = field(default_factory=list)
    sent: int = 0  # messages handed to gRPC so far
    cancelled: threading.Event = field(default_factory=threading.Event)

    def PredictStream(self, request: Any, context: Any) -> Iterator[ipb.PredictStreamResponse]:
        self.calls.append((request, dict(context.invocation_metadata())))
        for message in self.handler(request, context):
            self.sent += 1
            yield message

    def hold_until_cancelled(self, *first: Any) -> Handler:
        """Sends `first`, then keeps the call open (for 30 s) until the client goes away: the call
        ending before then is the client's doing, and sets `cancelled`. (The termination callback,
        not a check in the handler: gRPC stops running a handler whose call was cancelled while it
        was sending.)"""

        def handler(request: Any, context: Any) -> Iterator[ipb.PredictStreamResponse]:
            context.add_callback(self.cancelled.set)
            for item in first:
                yield ok(item)
            deadline = time.monotonic() + 30
            while context.is_active() and time.monotonic() < deadline:
                time.sleep(0.01)

        return handler


@dataclass
class EndpointService(egrpc.ModelEndpointServiceServicer):
    """Endpoints in a dict; GetModelEndpointRoute answers `route` (None: no route, use the server)."""

    endpoints: dict[str, epb.ModelEndpoint] = field(default_factory=dict)
    route: epb.GetModelEndpointRouteResponse | None = None
    route_calls: int = 0

    def CreateModelEndpoint(self, request: Any, context: Any) -> epb.CreateModelEndpointResponse:
        endpoint = epb.ModelEndpoint()
        endpoint.CopyFrom(request.endpoint)
        endpoint.status = epb.ENDPOINT_STATUS_UPDATE_PENDING
        self.endpoints[endpoint.name] = endpoint
        return epb.CreateModelEndpointResponse(endpoint=endpoint)

    def GetModelEndpoint(self, request: Any, context: Any) -> epb.GetModelEndpointResponse:
        if request.name not in self.endpoints:
            context.abort(grpc.StatusCode.NOT_FOUND, f"model endpoint {request.name!r} not found")
        return epb.GetModelEndpointResponse(endpoint=self.endpoints[request.name])

    def ListModelEndpoints(self, request: Any, context: Any) -> epb.ListModelEndpointsResponse:
        return epb.ListModelEndpointsResponse(endpoints=list(self.endpoints.values()))

    def GetModelEndpointRoute(self, request: Any, context: Any) -> epb.GetModelEndpointRouteResponse:
        self.route_calls += 1
        return self.route or epb.GetModelEndpointRouteResponse()


@dataclass
class StreamingFake:
    """The server and one replica, each a real gRPC server on 127.0.0.1."""

    server: StreamService
    replica: StreamService
    endpoints: EndpointService
    address: str
    replica_address: str

    def add_endpoint(self, name: str, endpoint_type: int = epb.ENDPOINT_TYPE_STREAMING) -> None:
        self.endpoints.endpoints[name] = epb.ModelEndpoint(
            name=name, bundle_name="b", endpoint_type=endpoint_type, status=epb.ENDPOINT_STATUS_READY
        )

    def route_to_replica(self) -> None:
        expire = timestamp_pb2.Timestamp(seconds=int(time.time()) + 600)
        self.endpoints.route = epb.GetModelEndpointRouteResponse(
            replica_addresses=[self.replica_address],
            route_token=ROUTE_TOKEN,
            route_token_expire_time=expire,
            refresh_after_seconds=60,
        )

    def client(self, direct_route: bool = True) -> launch.LaunchClient:
        return launch.LaunchClient(api_key="launch_key_test", endpoint=self.address, direct_route=direct_route)


def _serve(*adders: Callable[[grpc.Server], None]) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    for add in adders:
        add(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


def start_fake() -> tuple[StreamingFake, Callable[[], None]]:
    """The fake and the function that stops it (for fixtures in this and other test modules)."""
    server_service, replica_service, endpoints = StreamService(), StreamService(), EndpointService()
    server, address = _serve(
        lambda s: igrpc.add_InferenceServiceServicer_to_server(server_service, s),
        lambda s: egrpc.add_ModelEndpointServiceServicer_to_server(endpoints, s),
    )
    replica, replica_address = _serve(lambda s: igrpc.add_InferenceServiceServicer_to_server(replica_service, s))
    fake = StreamingFake(server_service, replica_service, endpoints, address, replica_address)

    def stop() -> None:
        server.stop(0)
        replica.stop(0)

    return fake, stop


@pytest.fixture()
def fake() -> Iterator[StreamingFake]:
    made, stop = start_fake()
    made.add_endpoint("stream-ep")
    yield made
    stop()


def _endpoint(fake: StreamingFake, direct_route: bool = True) -> launch.StreamingEndpoint:
    endpoint = fake.client(direct_route).get_model_endpoint("stream-ep")
    assert isinstance(endpoint, launch.StreamingEndpoint)
    return endpoint


def _request() -> launch.EndpointRequest:
    return launch.EndpointRequest(args={"n": 2}, return_pickled=False)


def _wait_for(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


# ---- the stream itself (through the server, and on the direct route) ---------------------------


@pytest.fixture(params=["server", "direct"])
def route(request: pytest.FixtureRequest, fake: StreamingFake) -> StreamService:
    """Where the stream is answered: the server's PredictStream, or the replica's."""
    if request.param == "direct":
        fake.route_to_replica()
        return fake.replica
    return fake.server


def test_each_value_is_one_success_response_in_order(fake: StreamingFake, route: StreamService) -> None:
    route.handler = values("a", {"b": 1}, [2, 3])
    responses = list(_endpoint(fake).predict(_request()))
    assert [(r.status, r.result, r.traceback) for r in responses] == [
        ("SUCCESS", '"a"', None),
        ("SUCCESS", '{"b": 1}', None),
        ("SUCCESS", "[2, 3]", None),
    ]
    assert [r.load_result() for r in responses] == ["a", {"b": 1}, [2, 3]]
    ((sent, metadata),) = route.calls
    assert (sent.endpoint_name, sent.input.args_json, sent.input.return_pickled) == ("stream-ep", '{"n": 2}', False)
    expected_key = ROUTE_TOKEN if route is fake.replica else "launch_key_test"
    assert metadata["authorization"] == f"Bearer {expected_key}"


def test_values_arrive_lazily_one_at_a_time(fake: StreamingFake, route: StreamService) -> None:
    release = threading.Event()

    def handler(request: Any, context: Any) -> Iterator[ipb.PredictStreamResponse]:
        yield ok(1)
        release.wait(WAIT_S)
        yield ok(2)

    route.handler = handler
    responses = _endpoint(fake).predict(_request())
    assert route.calls == []  # nothing is sent before iteration starts
    first = next(responses)
    assert first.load_result() == 1
    assert route.sent == 1  # the client saw value 1 while value 2 was not yet sent
    release.set()
    assert next(responses).load_result() == 2
    assert list(responses) == []


def test_break_cancels_the_call(fake: StreamingFake, route: StreamService) -> None:
    route.handler = route.hold_until_cancelled(1, 2)
    for response in _endpoint(fake).predict(_request()):
        assert response.load_result() == 1
        break
    assert route.cancelled.wait(WAIT_S)


def test_close_and_with_cancel_the_call(fake: StreamingFake, route: StreamService) -> None:
    route.handler = route.hold_until_cancelled(1)
    responses = _endpoint(fake).predict(_request())
    assert next(responses).load_result() == 1
    responses.close()
    assert route.cancelled.wait(WAIT_S)
    assert list(responses) == []  # closed: the iteration is over
    route.cancelled.clear()
    with _endpoint(fake).predict(_request()) as responses:
        next(responses)
    assert route.cancelled.wait(WAIT_S)


def test_close_from_another_thread_ends_a_blocked_reader(fake: StreamingFake, route: StreamService) -> None:
    route.handler = route.hold_until_cancelled(1)
    responses = _endpoint(fake).predict(_request())
    next(responses)
    threading.Timer(0.2, responses.close).start()
    assert list(responses) == []  # the blocked next() ends the iteration, no error
    assert route.cancelled.wait(WAIT_S)


def test_close_from_another_thread_ends_a_reader_waiting_for_the_first_value(
    fake: StreamingFake, route: StreamService
) -> None:
    route.handler = route.hold_until_cancelled()  # no value at all until the call ends
    responses = _endpoint(fake).predict(_request())
    threading.Timer(0.3, responses.close).start()
    started = time.monotonic()
    assert list(responses) == []  # the wait for the first value ends with the iteration, no error
    assert time.monotonic() - started < WAIT_S
    assert route.cancelled.wait(WAIT_S)


def test_a_dropped_iterator_cancels_the_call(fake: StreamingFake, route: StreamService) -> None:
    route.handler = route.hold_until_cancelled(1)
    responses = _endpoint(fake).predict(_request())
    next(responses)
    del responses
    gc.collect()
    assert route.cancelled.wait(WAIT_S)


def test_the_timeout_bounds_the_whole_stream(fake: StreamingFake, route: StreamService) -> None:
    route.handler = route.hold_until_cancelled(1)
    responses = _endpoint(fake).predict(_request(), timeout=0.5)
    assert next(responses).load_result() == 1
    started = time.monotonic()
    with pytest.raises(launch.DeadlineExceededError):
        next(responses)
    assert time.monotonic() - started < WAIT_S
    assert route.cancelled.wait(WAIT_S)
    assert list(responses) == []


def test_a_failure_is_the_last_response(fake: StreamingFake, route: StreamService) -> None:
    def handler(request: Any, context: Any) -> Iterator[ipb.PredictStreamResponse]:
        yield ok("partial")
        yield failed("Traceback: ValueError: boom")
        yield ok("never seen")  # a broken server: the SDK stops at the failure anyway

    route.handler = handler
    responses = list(_endpoint(fake).predict(_request()))
    assert [(r.status, r.result, r.traceback) for r in responses] == [
        ("SUCCESS", '"partial"', None),
        ("FAILURE", None, "Traceback: ValueError: boom"),
    ]


def test_values_that_travel_together_are_each_one_response(fake: StreamingFake, route: StreamService) -> None:
    def handler(request: Any, context: Any) -> Iterator[ipb.PredictStreamResponse]:
        yield ok(0)
        together = ok(1)
        together.more.extend([ok(2).result, ok(3).result])
        yield together
        last = ok(4)
        last.more.extend([failed("Traceback: boom").result, ok("never seen").result])
        yield last

    route.handler = handler
    responses = list(_endpoint(fake).predict(_request()))
    assert [(r.status, r.result) for r in responses] == [
        ("SUCCESS", "0"),
        ("SUCCESS", "1"),
        ("SUCCESS", "2"),
        ("SUCCESS", "3"),
        ("SUCCESS", "4"),
        ("FAILURE", None),  # the failure ends the stream, whatever a broken server sent after it
    ]


def test_an_empty_stream_has_no_responses(fake: StreamingFake, route: StreamService) -> None:
    route.handler = values()
    assert list(_endpoint(fake).predict(_request())) == []


def test_return_pickled_is_refused_when_iteration_starts(fake: StreamingFake, route: StreamService) -> None:
    def handler(request: Any, context: Any) -> Iterator[ipb.PredictStreamResponse]:
        if request.input.return_pickled:
            bad = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field="input.return_pickled", description="must be false"
                    )
                ]
            )
            status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="input.return_pickled: must be false")
            status.details.add().Pack(bad)
            context.abort_with_status(rpc_status.to_status(status))
        yield ok("unreachable")

    route.handler = handler
    responses = _endpoint(fake).predict(launch.EndpointRequest(args={}, return_pickled=True))
    assert route.calls == []
    with pytest.raises(launch.InvalidArgumentError) as err:
        next(responses)
    assert err.value.field == "input.return_pickled"
    assert list(responses) == []  # never sent again
    assert len(fake.server.calls) + len(fake.replica.calls) == 1


# ---- the direct route's fallback -------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNIMPLEMENTED,
    ],
)
def test_a_refusal_before_acceptance_falls_back_to_the_server(fake: StreamingFake, code: grpc.StatusCode) -> None:
    fake.route_to_replica()
    fake.replica.handler = refuse(code)
    fake.server.handler = values("from the server", 2)
    results = [r.load_result() for r in _endpoint(fake).predict(_request())]
    assert results == ["from the server", 2]
    assert (len(fake.replica.calls), len(fake.server.calls)) == (1, 1)


def test_a_replica_without_predict_stream_falls_back() -> None:
    """An older replica build: grpc itself answers UNIMPLEMENTED for the unknown method."""
    made, stop = start_fake()
    try:
        made.add_endpoint("stream-ep")
        old, old_address = _serve(
            lambda s: igrpc.add_InferenceServiceServicer_to_server(igrpc.InferenceServiceServicer(), s)
        )
        made.route_to_replica()
        assert made.endpoints.route is not None
        made.endpoints.route.replica_addresses[:] = [old_address]
        made.server.handler = values("server")
        assert [r.load_result() for r in _endpoint(made).predict(_request())] == ["server"]
        old.stop(0)
    finally:
        stop()


def test_no_fallback_once_the_replica_accepted(fake: StreamingFake) -> None:
    fake.route_to_replica()
    fake.replica.handler = refuse(grpc.StatusCode.UNAVAILABLE, accepted=True)
    with pytest.raises(launch.UnavailableError):
        next(_endpoint(fake).predict(_request()))
    assert fake.server.calls == []  # the request may have run: it is not sent again


def test_no_fallback_after_the_first_value(fake: StreamingFake) -> None:
    fake.route_to_replica()
    fake.replica.handler = refuse(grpc.StatusCode.UNAVAILABLE, after=("one",))
    responses = _endpoint(fake).predict(_request())
    assert next(responses).load_result() == "one"
    with pytest.raises(launch.UnavailableError):
        next(responses)
    assert fake.server.calls == []
    assert list(responses) == []


def test_other_errors_on_the_replica_are_the_callers(fake: StreamingFake) -> None:
    fake.route_to_replica()
    fake.replica.handler = refuse(grpc.StatusCode.FAILED_PRECONDITION)
    with pytest.raises(launch.FailedPreconditionError):
        next(_endpoint(fake).predict(_request()))
    assert fake.server.calls == []


def test_the_server_stream_is_not_retried(fake: StreamingFake) -> None:
    fake.server.handler = refuse(grpc.StatusCode.UNAVAILABLE)
    with pytest.raises(launch.UnavailableError):
        next(_endpoint(fake, direct_route=False).predict(_request()))
    assert len(fake.server.calls) == 1  # a stream runs the predict function: never sent twice


def test_an_open_stream_counts_in_flight_on_its_replica_until_it_ends(fake: StreamingFake) -> None:
    fake.route_to_replica()
    fake.replica.handler = fake.replica.hold_until_cancelled(1)
    endpoint = _endpoint(fake)
    router = endpoint.client.endpoint_calls.direct
    assert router is not None
    responses = endpoint.predict(_request())
    next(responses)
    replica = router._replicas[fake.replica_address]
    assert replica.in_flight == 1
    responses.close()
    assert _wait_for(lambda: replica.in_flight == 0)
    fake.replica.handler = values(1, 2)
    assert len(list(endpoint.predict(_request()))) == 2
    assert _wait_for(lambda: replica.in_flight == 0)


# ---- endpoint types --------------------------------------------------------------------------


def test_create_get_and_list_answer_streaming_endpoints(fake: StreamingFake) -> None:
    client = fake.client()
    created = client.create_model_endpoint("new-stream", "b", endpoint_type="streaming")
    assert isinstance(created, launch.StreamingEndpoint)
    assert fake.endpoints.endpoints["new-stream"].endpoint_type == epb.ENDPOINT_TYPE_STREAMING
    assert created.model_endpoint.endpoint_type == "streaming"
    got = client.get_model_endpoint("new-stream")
    assert isinstance(got, launch.StreamingEndpoint) and got.status() == "UPDATE_PENDING"
    fake.add_endpoint("sync-ep", epb.ENDPOINT_TYPE_SYNC)
    fake.add_endpoint("async-ep", epb.ENDPOINT_TYPE_ASYNC)
    kinds = {e.name: type(e) for e in client.list_model_endpoints()}
    assert kinds == {
        "stream-ep": launch.StreamingEndpoint,
        "new-stream": launch.StreamingEndpoint,
        "sync-ep": launch.SyncEndpoint,
        "async-ep": launch.AsyncEndpoint,
    }


def test_an_unknown_endpoint_type_names_the_three(fake: StreamingFake) -> None:
    with pytest.raises(ValueError, match="'sync', 'async' or 'streaming'"):
        fake.client().create_model_endpoint("x", "b", endpoint_type="batch")
