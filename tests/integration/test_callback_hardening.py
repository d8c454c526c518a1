"""The callback hook against hostile receivers, on a real launch-server joined to the session's
loopback Ray cluster: one owner's receivers that trickle their answers a byte every 2 s cannot stall
another owner's RPCs, a redirect is never followed, and a host outside LAUNCH_CALLBACK_NETWORKS is
refused. The server allows only 127.0.0.2 (so 127.0.0.1 and `localhost` count as outside)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import launch
import pytest
from launch.v1 import model_bundle_pb2 as bpb
from launch.v1 import model_bundle_pb2_grpc as bgrpc

from tests.callback_receivers import Recorder, Trickler
from tests.integration.test_async_faults import (
    ENDPOINT_READY_S,
    callback_endpoint,
    callback_row,
    delete_quietly,
    make_double,
)
from tests.integration.test_endpoints import client_for, wait_for, wait_status
from tests.server_fixtures import serving_server_fixture
from tests.support import ServerHandle

DEADLINE_S = 15
ALLOWED = "127.0.0.2"


server = serving_server_fixture(
    "callbacks",
    "cb{pid}",
    LAUNCH_CALLBACK_NETWORKS=f"{ALLOWED}/32",
    LAUNCH_CALLBACK_DEADLINE_S=str(DEADLINE_S),
    LAUNCH_CALLBACK_MAX_ATTEMPTS="1",
)


@pytest.fixture(scope="module")
def endpoint(server: ServerHandle) -> Iterator[launch.AsyncEndpoint]:
    client = client_for(server)
    ep = callback_endpoint(client, "hostile-callbacks", make_double(0), port=9)  # every test names its URL
    try:
        wait_status(ep, "READY", timeout=ENDPOINT_READY_S)
        yield ep
    finally:
        delete_quietly(client, "hostile-callbacks")


def predict(ep: launch.AsyncEndpoint, x: int, callback_url: str) -> str:
    future = ep.predict(launch.EndpointRequest(args={"x": x}, callback_url=callback_url, return_pickled=False))
    response = future.get(timeout=120)
    assert (response.status, response.result) == ("SUCCESS", str(2 * x)), response
    return future.async_task_id


def final_callback(server: ServerHandle, task_id: str, timeout: float = 60) -> tuple[str, int, str]:
    wait_for(lambda: callback_row(server, task_id)[0] in ("DONE", "FAILED"), timeout, "the callback's outcome")
    return callback_row(server, task_id)


def list_bundles(server: ServerHandle, owner: str) -> list[str]:
    with server.channel() as channel:
        reply = bgrpc.ModelBundleServiceStub(channel).ListModelBundles(
            bpb.ListModelBundlesRequest(),
            metadata=(("authorization", f"Bearer {server.key_for(owner)}"),),
            timeout=30,  # generous: a stalled server answers DEADLINE_EXCEEDED
        )
    return [b.name for b in reply.model_bundles]


def test_trickling_receivers_do_not_stall_other_owners(server: ServerHandle, endpoint: launch.AsyncEndpoint) -> None:
    trickler = Trickler(ALLOWED, every_s=2.0)
    try:
        futures = [
            endpoint.predict(launch.EndpointRequest(args={"x": i}, callback_url=trickler.url, return_pickled=False))
            for i in range(24)
        ]
        for i, future in enumerate(futures):
            response = future.get(timeout=120)
            assert (response.status, response.result) == ("SUCCESS", str(2 * i)), response
        assert trickler.wait_open(20, timeout=DEADLINE_S) >= 20, "callbacks in flight together"
        for _ in range(5):  # bob's and alice's plain RPCs answer while alice's receivers trickle
            try:
                assert list_bundles(server, "bob") == []
                assert "hostile-callbacks-bundle" in list_bundles(server, "alice")
            except grpc.RpcError as error:
                pytest.fail(f"ListModelBundles stalled behind the callbacks: {error.code()} {error.details()}")
        for future in futures:
            state, attempts, error = final_callback(server, future.async_task_id, timeout=3 * DEADLINE_S)
            assert (state, attempts) == ("FAILED", 1), (state, attempts, error)
            assert f"within the {DEADLINE_S} s deadline" in error, error
        assert all(client_for(server).get_async_response(f.async_task_id)["state"] == "SUCCESS" for f in futures)
    finally:
        trickler.stop()


@pytest.mark.parametrize("location", ["file:///etc/passwd", "outside"])
def test_a_redirect_is_not_followed(server: ServerHandle, endpoint: launch.AsyncEndpoint, location: str) -> None:
    outside = Recorder("127.0.0.1")  # loopback, but not in the server's list
    target = outside.url("/stolen") if location == "outside" else location
    redirect = Recorder(ALLOWED, status=302, location=target)
    try:
        task_id = predict(endpoint, 4, redirect.url())
        state, attempts, error = final_callback(server, task_id)
        assert (state, attempts) == ("FAILED", 1), (state, attempts, error)
        assert f"302 to {target!r}" in error and "do not follow redirects" in error, error
        assert redirect.hits == 1 and outside.hits == 0
    finally:
        redirect.stop()
        outside.stop()


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_a_host_outside_the_networks_is_refused(
    server: ServerHandle, endpoint: launch.AsyncEndpoint, host: str
) -> None:
    receiver = Recorder("127.0.0.1")
    try:
        task_id = predict(endpoint, 5, receiver.url(host=host))
        state, attempts, error = final_callback(server, task_id)
        assert (state, attempts) == ("FAILED", 1), (state, attempts, error)
        assert "refused" in error and "127.0.0.1" in error and f"LAUNCH_CALLBACK_NETWORKS ({ALLOWED}/32)" in error
        assert receiver.hits == 0
        assert client_for(server).get_async_response(task_id) == {"state": "SUCCESS", "result": "10"}
    finally:
        receiver.stop()


def test_an_allowed_receiver_still_gets_the_result(server: ServerHandle, endpoint: launch.AsyncEndpoint) -> None:
    receiver = Recorder(ALLOWED)
    try:
        task_id = predict(endpoint, 6, receiver.url("/ok"))
        assert final_callback(server, task_id) == ("DONE", 1, "")
        assert receiver.posts == [("/ok", {"task_id": task_id, "status": "SUCCESS", "result": "12", "traceback": None})]
    finally:
        receiver.stop()
