"""Runtime logs (issue: observability): what a replica's user code prints to stdout and stderr,
logs with the logging module, and the tracebacks of its failed requests reach the endpoint's
owner through StreamModelEndpointLogs, the SDK's stream_endpoint_logs and `launch endpoints
logs`, tagged with replica and time, from replicas on both nodes of the session's two-node
cluster; another owner never sees them, --since filters by age, and a follower ends cleanly when
the client stops. Real server, Ray cluster, replicas."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator

import grpc
import launch
import pytest
from click.testing import CliRunner
from launch.cli.main import cli
from launch.v1 import model_endpoint_pb2 as epb
from launch.v1 import model_endpoint_pb2_grpc as egrpc

from tests.integration.test_endpoints import ENV, SMALL, args, client_for, wait_for, wait_status
from tests.server_fixtures import serving_server_fixture
from tests.support import ServerHandle

server = serving_server_fixture("runtime-logs", "l{dir}", LAUNCH_LOG_FOLLOWERS_MAX="2")
ONE = {**SMALL, "min_workers": 1, "max_workers": 1}


def make_chatty():  # type: ignore[no-untyped-def]
    def predict(tag: str, fail: bool = False) -> dict:
        import logging
        import sys

        print(f"out {tag}")
        print(f"err {tag}", file=sys.stderr)
        logging.getLogger("model").info("log %s", tag)
        if fail:
            raise ValueError(f"boom {tag}")
        return {"tag": tag}

    return predict


@pytest.fixture(scope="module")
def endpoints(server: ServerHandle) -> Iterator[dict[str, launch.Endpoint]]:
    """alice's endpoint on the head node and one on the GPU node; bob's, of the same bundle."""
    alice, bob = client_for(server), client_for(server, "bob")
    chatty = alice.create_model_bundle("chatty", ENV, predict_fn_or_cls=make_chatty(), requirements=[])
    bobs_bundle = bob.create_model_bundle("chatty", ENV, predict_fn_or_cls=make_chatty(), requirements=[])
    made = {
        "head": alice.create_model_endpoint("chatty", chatty, **ONE),
        "gpu": alice.create_model_endpoint("chatty-gpu", chatty, **ONE, gpus=1, gpu_type="nvidia-tesla-t4"),
        "bob": bob.create_model_endpoint("chatty", bobs_bundle, **ONE),
    }
    for ep in made.values():
        wait_status(ep, "READY", timeout=120)
    yield made
    for name, ep in made.items():
        (bob if name == "bob" else alice).delete_model_endpoint(ep.model_endpoint.name)


def lines_of(client: launch.LaunchClient, name: str, **kw: object) -> list[launch.EndpointLogLine]:
    return list(client.stream_endpoint_logs(name, **kw))  # type: ignore[arg-type]


def wait_lines(client: launch.LaunchClient, name: str, tag: str, count: int) -> list[launch.EndpointLogLine]:
    """The lines that name `tag`, once there are `count` of them (replicas publish every 0.5 s)."""
    found: list[launch.EndpointLogLine] = []

    def enough() -> bool:
        found[:] = [ln for ln in lines_of(client, name) if tag in ln.text]
        return len(found) >= count

    wait_for(enough, 20, f"{count} lines tagged {tag}", interval=0.3)
    return found


def test_prints_logs_and_tracebacks_reach_the_owner(server: ServerHandle, endpoints: dict) -> None:
    alice = client_for(server)
    tag = uuid.uuid4().hex[:8]
    assert endpoints["head"].predict(args(tag=tag)).status == "SUCCESS"
    assert endpoints["head"].predict(args(tag=f"{tag}-bad", fail=True)).status == "FAILURE"
    found = wait_lines(alice, "chatty", tag, 7)  # 3 lines per request, and one traceback
    by_stream = {(ln.stream, ln.text.split(" ", 2)[-1] if ln.stream == "logging" else ln.text) for ln in found}
    assert ("stdout", f"out {tag}") in by_stream
    assert ("stderr", f"err {tag}") in by_stream
    assert any(ln.stream == "logging" and ln.text == f"INFO model: log {tag}" for ln in found)
    tracebacks = [ln for ln in found if ln.stream == "traceback"]
    assert len(tracebacks) == 1 and f"ValueError: boom {tag}-bad" in tracebacks[0].text
    assert "Traceback (most recent call last)" in tracebacks[0].text
    replicas = {ln.replica for ln in found}
    assert len(replicas) == 1 and all(replicas)
    assert all(abs(time.time() - ln.time.timestamp()) < 120 for ln in found)
    assert [ln.time for ln in found] == sorted(ln.time for ln in found)  # oldest first


def test_a_replica_on_the_second_node_is_read(server: ServerHandle, endpoints: dict) -> None:
    tag = uuid.uuid4().hex[:8]
    assert endpoints["gpu"].predict(args(tag=tag)).status == "SUCCESS"
    found = wait_lines(client_for(server), "chatty-gpu", tag, 3)
    assert {ln.stream for ln in found} == {"stdout", "stderr", "logging"}


def test_another_owner_never_sees_them(server: ServerHandle, endpoints: dict) -> None:
    alice, bob = client_for(server), client_for(server, "bob")
    alice_tag, bob_tag = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    assert endpoints["head"].predict(args(tag=alice_tag)).status == "SUCCESS"
    assert endpoints["bob"].predict(args(tag=bob_tag)).status == "SUCCESS"
    wait_lines(alice, "chatty", alice_tag, 3)
    bobs = wait_lines(bob, "chatty", bob_tag, 3)  # bob's endpoint has the same name as alice's
    assert not any(alice_tag in ln.text for ln in lines_of(bob, "chatty"))
    assert not any(bob_tag in ln.text for ln in lines_of(alice, "chatty"))
    assert {ln.replica for ln in bobs}.isdisjoint({ln.replica for ln in lines_of(alice, "chatty")})
    with pytest.raises(launch.NotFoundError):
        lines_of(bob, "chatty-gpu")


def test_since_leaves_older_lines_out(server: ServerHandle, endpoints: dict) -> None:
    alice = client_for(server)
    old, new = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    assert endpoints["head"].predict(args(tag=old)).status == "SUCCESS"
    wait_lines(alice, "chatty", old, 3)
    time.sleep(3.0)
    assert endpoints["head"].predict(args(tag=new)).status == "SUCCESS"
    wait_lines(alice, "chatty", new, 3)
    recent = lines_of(alice, "chatty", since_seconds=2.0)
    assert any(new in ln.text for ln in recent)
    assert not any(old in ln.text for ln in recent)


def test_following_gets_new_lines_and_ends_when_the_client_stops(server: ServerHandle, endpoints: dict) -> None:
    alice = client_for(server)
    tag = uuid.uuid4().hex[:8]
    seen: list[launch.EndpointLogLine] = []
    got_it = threading.Event()
    follower = alice.stream_endpoint_logs("chatty", since_seconds=1.0, follow=True)

    def follow() -> None:
        for line in follower:
            seen.append(line)
            if tag in line.text:
                got_it.set()
                return

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    time.sleep(1.0)  # the follow is open before the request runs
    assert endpoints["head"].predict(args(tag=tag)).status == "SUCCESS"
    assert got_it.wait(20), seen
    thread.join(5)
    assert not thread.is_alive()
    follower.close()  # cancels the call
    assert lines_of(alice, "chatty", since_seconds=60)  # the server answers on


def follow_call(server: ServerHandle, name: str, timeout: float | None = None):  # type: ignore[no-untyped-def]
    channel = grpc.insecure_channel(server.address)
    stub = egrpc.ModelEndpointServiceStub(channel)
    metadata = (("authorization", f"Bearer {server.key_for('alice')}"),)
    request = epb.StreamModelEndpointLogsRequest(name=name, since_seconds=0.5, follow=True)
    return channel, stub.StreamModelEndpointLogs(request, metadata=metadata, timeout=timeout)


def test_followers_are_bounded_and_a_cancelled_one_frees_its_slot(server: ServerHandle, endpoints: dict) -> None:
    """The server fixture allows two followers (LAUNCH_LOG_FOLLOWERS_MAX=2)."""
    opened = [follow_call(server, "chatty") for _ in range(2)]
    time.sleep(1.5)  # both handlers are running on the server
    channel, third = follow_call(server, "chatty", timeout=10)
    with pytest.raises(grpc.RpcError) as raised:
        list(third)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    channel.close()
    opened[0][1].cancel()
    time.sleep(1.5)  # the server's generator is cancelled and gives its slot back
    channel, fourth = follow_call(server, "chatty", timeout=3)
    with pytest.raises(grpc.RpcError) as raised:
        list(fourth)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # it was let in, and followed
    channel.close()
    for channel, call in opened:
        call.cancel()
        channel.close()


def test_a_follow_ends_when_its_endpoint_is_deleted(server: ServerHandle) -> None:
    alice = client_for(server)
    bundle = alice.create_model_bundle("chatty-brief", ENV, predict_fn_or_cls=make_chatty(), requirements=[])
    brief = alice.create_model_endpoint("chatty-brief", bundle, **ONE)
    wait_status(brief, "READY", timeout=120)
    channel, call = follow_call(server, "chatty-brief", timeout=60)
    time.sleep(1.0)
    alice.delete_model_endpoint("chatty-brief")
    list(call)  # ends without an error once the endpoint is gone
    assert call.code() == grpc.StatusCode.OK
    channel.close()


def test_bad_arguments_are_refused_with_the_field(server: ServerHandle, endpoints: dict) -> None:
    channel = grpc.insecure_channel(server.address)
    stub = egrpc.ModelEndpointServiceStub(channel)
    metadata = (("authorization", f"Bearer {server.key_for('alice')}"),)
    for since in (-1.0, float("nan"), 1e9):
        request = epb.StreamModelEndpointLogsRequest(name="chatty", since_seconds=since)
        with pytest.raises(grpc.RpcError) as raised:
            list(stub.StreamModelEndpointLogs(request, metadata=metadata, timeout=10))
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "since_seconds" in raised.value.details()
    with pytest.raises(grpc.RpcError) as raised:
        list(stub.StreamModelEndpointLogs(epb.StreamModelEndpointLogsRequest(name="nope"), metadata=metadata))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as raised:
        list(stub.StreamModelEndpointLogs(epb.StreamModelEndpointLogsRequest(name="chatty"), timeout=10))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    channel.close()


def test_the_cli_prints_them(server: ServerHandle, endpoints: dict, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:8]
    assert endpoints["head"].predict(args(tag=tag)).status == "SUCCESS"
    wait_lines(client_for(server), "chatty", tag, 3)
    env = {
        "LAUNCH_API_KEY": server.key_for("alice"),
        "LAUNCH_ENDPOINT": server.address,
        "LAUNCH_CONFIG": str(tmp_path / "absent.json"),
    }
    result = CliRunner().invoke(cli, ["endpoints", "logs", "chatty", "--since", "10m"], env=env)
    assert result.exit_code == 0, result.output
    printed = [line for line in result.stdout.splitlines() if tag in line]
    assert any(line.endswith(f"stdout: out {tag}") for line in printed), printed
    result = CliRunner().invoke(cli, ["-o", "json", "endpoints", "logs", "chatty", "--since", "10m"], env=env)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {"time", "replica", "stream", "text"} <= set(rows[0])
    assert any(row["text"] == f"err {tag}" and row["stream"] == "stderr" for row in rows)
    result = CliRunner().invoke(cli, ["endpoints", "logs", "chatty", "--since", "soon"], env=env)
    assert result.exit_code == 2 and "--since" in result.output
