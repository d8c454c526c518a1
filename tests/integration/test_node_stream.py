"""Cross-language check of streaming (issue #13): a streaming endpoint the Python SDK creates is
streamed by a Node.js client that loads proto/launch/v1/inference.proto at run time (no generated
code), through the server's InferenceService.PredictStream. It needs a server with its serving
layer, so it has a module of its own rather than test_node_client's plain `server` fixture."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import launch
import pytest

from tests.integration.test_endpoints import ENV, SMALL, client_for, wait_status
from tests.integration.test_streaming_server import make_counter
from tests.server_fixtures import serving_server_fixture
from tests.support import REPO, ServerHandle

SCRIPT = REPO / "tests" / "node" / "predict_stream.js"

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(
    NODE is None
    or not (REPO / "node_modules" / "@grpc" / "grpc-js").is_dir()
    or not (REPO / "node_modules" / "@grpc" / "proto-loader").is_dir(),
    reason="needs `node` on PATH and node_modules/@grpc/{grpc-js,proto-loader} (run `npm ci`)",
)

server = serving_server_fixture("node-stream", "n{dir}")


def node_env() -> dict[str, str]:
    """A clean LAUNCH_* environment so only the arguments count."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LAUNCH_")}


def stream_with_node(
    server: ServerHandle, endpoint: str, key: str | None = None, **kw: object
) -> tuple[list[tuple[float, dict]], str, int]:
    """Runs the Node client and reads its stdout line by line as it comes: each message with the
    seconds since the start at which it arrived, then stderr and the exit code."""
    cmd = [str(NODE), str(SCRIPT), server.address, key or server.key_for("alice"), endpoint, json.dumps(kw), "60"]
    started = time.monotonic()
    with subprocess.Popen(
        cmd, cwd=REPO, env=node_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        lines = [(time.monotonic() - started, json.loads(line)) for line in proc.stdout]
        stderr = proc.stderr.read()
        code = proc.wait(timeout=60)
    return lines, stderr, code


@pytest.fixture(scope="module")
def endpoint(server: ServerHandle) -> Iterator[launch.Endpoint]:
    client = client_for(server)
    bundle = client.create_model_bundle("node-counter", ENV, predict_fn_or_cls=make_counter(), requirements=[])
    ep = client.create_model_endpoint(
        "node-counter", bundle, **SMALL, endpoint_type="streaming", min_workers=1, per_worker=2
    )
    wait_status(ep, "READY")
    yield ep
    client.delete_model_endpoint(ep)


def test_node_client_prints_each_value_in_order_one_line_each(server: ServerHandle, endpoint) -> None:  # type: ignore[no-untyped-def]
    lines, stderr, code = stream_with_node(server, "node-counter", n=4)
    assert code == 0, stderr
    assert [message for _, message in lines] == [
        {"state": "RESULT_STATE_SUCCESS", "result": json.dumps({"i": i}), "traceback": ""} for i in range(4)
    ]


def test_node_client_sees_values_as_they_are_yielded(server: ServerHandle, endpoint) -> None:  # type: ignore[no-untyped-def]
    lines, stderr, code = stream_with_node(server, "node-counter", n=3, pause=1.5)
    assert code == 0, stderr
    arrivals = [at for at, _ in lines]
    assert len(arrivals) == 3
    assert arrivals[1] - arrivals[0] > 1.0 and arrivals[2] - arrivals[1] > 1.0  # not held back to the end


def test_a_generator_that_raises_ends_with_one_failure_line(server: ServerHandle, endpoint) -> None:  # type: ignore[no-untyped-def]
    lines, stderr, code = stream_with_node(server, "node-counter", n=5, fail_after=2)
    assert code == 0, stderr  # the failure is a message; the call itself ends OK
    messages = [message for _, message in lines]
    assert [(m["state"], m["result"]) for m in messages[:2]] == [
        ("RESULT_STATE_SUCCESS", '{"i": 0}'),
        ("RESULT_STATE_SUCCESS", '{"i": 1}'),
    ]
    [last] = messages[2:]
    assert last["state"] == "RESULT_STATE_FAILURE"
    assert "ValueError: failed after 2 values" in last["traceback"]


def test_node_client_gets_the_rpc_errors(server: ServerHandle, endpoint) -> None:  # type: ignore[no-untyped-def]
    lines, stderr, code = stream_with_node(server, "no-such-endpoint")
    assert (code, lines) == (1, [])
    assert stderr.startswith("NOT_FOUND: ")
    bad_key = server.key_for("alice")[:-4] + "xxxx"
    lines, stderr, code = stream_with_node(server, "node-counter", key=bad_key, n=1)
    assert (code, lines) == (1, [])
    assert stderr.startswith("UNAUTHENTICATED: ")
