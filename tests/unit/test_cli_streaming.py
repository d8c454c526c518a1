"""`launch tasks send` on a streaming endpoint, against the hand-written server of
test_sdk_streaming: one line per value as it arrives (JSON text, or with `-o json` one object per
line), a failure's traceback and exit 1, and the server's refusal of --return-pickled as one
`error:` line. One test runs the CLI as a process and reads its stdout through a pipe, so it sees
whether each line is written when its value arrives rather than when the stream ends."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner, Result
from launch.cli.main import cli
from launch.v1 import inference_pb2 as ipb

from tests.unit.test_sdk_streaming import WAIT_S, StreamingFake, failed, ok, refuse, start_fake, values

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def fake() -> Iterator[StreamingFake]:
    made, stop = start_fake()
    made.add_endpoint("stream-ep")
    yield made
    stop()


@pytest.fixture()
def env(fake: StreamingFake, tmp_path: Path) -> dict[str, str]:
    return {
        "LAUNCH_API_KEY": "launch_key_test",
        "LAUNCH_ENDPOINT": fake.address,
        "LAUNCH_CONFIG": str(tmp_path / "absent" / "config.json"),
    }


def send(env: dict[str, str], *extra: str) -> Result:
    return CliRunner().invoke(cli, [*extra, "tasks", "send", "stream-ep", "--args", '{"n": 2}'], env=env)


def test_each_value_is_one_line(fake: StreamingFake, env: dict[str, str]) -> None:
    fake.server.handler = values("hello", {"tokens": [1, 2]}, "line\nbreak")
    result = send(env)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ['"hello"', '{"tokens": [1, 2]}', '"line\\nbreak"']
    ((request, _),) = fake.server.calls
    assert (request.endpoint_name, request.input.args_json, request.input.return_pickled) == (
        "stream-ep",
        '{"n": 2}',
        False,
    )


def test_json_output_is_one_object_per_line(fake: StreamingFake, env: dict[str, str]) -> None:
    fake.server.handler = values("a", 2)
    result = send(env, "-o", "json")
    assert result.exit_code == 0, result.output
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"status": "SUCCESS", "result": "a", "traceback": None},
        {"status": "SUCCESS", "result": 2, "traceback": None},
    ]


def _fails_after_one(request: Any, context: Any) -> Iterator[ipb.PredictStreamResponse]:
    yield ok("partial")
    yield failed("Traceback (most recent call last):\nValueError: boom")


def test_a_failure_prints_its_traceback_and_exits_1(fake: StreamingFake, env: dict[str, str]) -> None:
    fake.server.handler = _fails_after_one
    result = send(env)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == ['"partial"', "Traceback (most recent call last):", "ValueError: boom"]
    assert result.stderr.strip() == "error: request to 'stream-ep' finished with status FAILURE"


def test_a_failure_in_json_is_the_last_object(fake: StreamingFake, env: dict[str, str]) -> None:
    fake.server.handler = _fails_after_one
    result = send(env, "-o", "json")
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[-1] == {
        "status": "FAILURE",
        "result": None,
        "traceback": "Traceback (most recent call last):\nValueError: boom",
    }
    assert len(lines) == 2


def test_a_refused_request_is_one_error_line(fake: StreamingFake, env: dict[str, str]) -> None:
    fake.server.handler = refuse(grpc.StatusCode.INVALID_ARGUMENT)
    result = CliRunner().invoke(cli, ["tasks", "send", "stream-ep", "--args", "{}", "--return-pickled"], env=env)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip() == "error: INVALID_ARGUMENT: scripted INVALID_ARGUMENT"
    assert fake.server.calls[0][0].input.return_pickled is True


def test_lines_reach_a_pipe_as_the_values_arrive(fake: StreamingFake, env: dict[str, str]) -> None:
    first_read = threading.Event()
    seen_in_time: list[bool] = []

    def handler(request: Any, context: Any) -> Iterator[ipb.PredictStreamResponse]:
        yield ok("one")
        seen_in_time.append(first_read.wait(WAIT_S * 4))  # the reader saw "one" before "two" was sent
        yield ok("two")

    fake.server.handler = handler
    process = subprocess.Popen(
        [sys.executable, "-c", "from launch.cli.main import cli; cli()", "tasks", "send", "stream-ep", "--args", "{}"],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == '"one"\n'
        first_read.set()
        assert process.stdout.readline() == '"two"\n'
        assert process.wait(timeout=WAIT_S * 4) == 0
    finally:
        first_read.set()
        if process.poll() is None:
            process.kill()
        process.communicate()
    assert seen_in_time == [True]
