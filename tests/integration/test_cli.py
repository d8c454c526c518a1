"""The `launch` CLI end to end: every command against a real launch-server joined to the session's
Ray cluster (SQLite backend only: the CLI adds no storage behaviour of its own, and the SDK under
it is covered on both backends elsewhere). Resources are created through the SDK and then
listed, inspected, edited, waited for, called and deleted through the CLI."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import launch
import pytest
from click.testing import CliRunner, Result
from launch.cli.main import cli

from tests.integration.test_endpoints import ENV, SMALL, client_for, wait_for
from tests.support import BIN, REPO, ServerHandle

pytestmark = [pytest.mark.ray, pytest.mark.parametrize("serving_server", ["sqlite-local"], indirect=True)]

HAS_BATCH_SDK = hasattr(launch.LaunchClient, "batch_async_request")


def run(args: list[str], env: dict[str, str | None], input: str | None = None) -> Result:
    """Invokes the CLI in-process with exactly these settings in the environment."""
    return CliRunner().invoke(cli, args, env=env, input=input)


def ok(args: list[str], env: dict[str, str | None], input: str | None = None) -> Result:
    result = run(args, env, input)
    assert result.exit_code == 0, f"launch {' '.join(args)} -> {result.exit_code}\n{result.output}"
    return result


def ok_json(args: list[str], env: dict[str, str | None]) -> object:
    return json.loads(ok(["-o", "json", *args], env).stdout)


def fails(args: list[str], env: dict[str, str | None], exit_code: int, *needles: str) -> str:
    """Runs a command expected to fail cleanly: the wanted exit code, no traceback, and for
    exit 1 exactly one `error:` line on stderr."""
    result = run(args, env)
    assert result.exit_code == exit_code, f"launch {' '.join(args)} -> {result.exit_code}\n{result.output}"
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.stderr
    if exit_code == 1:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in result.stderr, f"{needle!r} not in {result.stderr!r}"
    return result.stderr


@pytest.fixture
def env(serving_server: ServerHandle, tmp_path: Path) -> dict[str, str | None]:
    """Settings through the environment, with a config file that does not exist."""
    return {
        "LAUNCH_API_KEY": serving_server.key_for("alice"),
        "LAUNCH_ENDPOINT": serving_server.address,
        "LAUNCH_CONFIG": str(tmp_path / "absent" / "config.json"),
    }


@pytest.fixture
def client(serving_server: ServerHandle) -> launch.LaunchClient:
    return client_for(serving_server)


def make_work():  # type: ignore[no-untyped-def]
    def work(x: object = None, fail: bool = False) -> object:
        if fail:
            raise RuntimeError(f"boom on {x}")
        return {"x": x}

    return work


@pytest.fixture
def cleanup(client: launch.LaunchClient) -> Iterator[list[str]]:
    """Endpoint names to delete after the test, so replicas do not pile up on the shared cluster."""
    names: list[str] = []
    yield names
    for name in names:
        try:
            client.delete_model_endpoint(name)
        except launch.NotFoundError:
            pass


# ---- packaging and settings -------------------------------------------------------------------


def test_cli_imports_without_server_extras(env: dict[str, str | None]) -> None:
    code = (
        "import sys, launch.cli.main\n"
        "server_only = ('ray', 'sqlmodel', 'sqlalchemy', 'launch_server')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in server_only)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)


def test_installed_script_lists_bundles(serving_server: ServerHandle, client: launch.LaunchClient) -> None:
    client.create_model_bundle("script-bundle", ENV, predict_fn_or_cls=make_work(), requirements=[])
    for script in ("launch", "scale-launch"):
        done = subprocess.run(
            [str(BIN / script), "--api-key", serving_server.key_for("alice"), "--endpoint", serving_server.address,
             "--output", "json", "bundles", "list"],
            capture_output=True, text=True, timeout=60, env={**os.environ, "LAUNCH_CONFIG": "/nonexistent/c.json"},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "script-bundle" in [b["name"] for b in json.loads(done.stdout)]
    client.delete_model_bundle("script-bundle")


def test_config_set_get_and_precedence(serving_server: ServerHandle, tmp_path: Path) -> None:
    key = serving_server.key_for("alice")
    prefix, key_id, secret = key.split("_", 2)
    config = tmp_path / "cfg" / "config.json"
    env: dict[str, str | None] = {"LAUNCH_CONFIG": str(config), "LAUNCH_API_KEY": None, "LAUNCH_ENDPOINT": None}

    saved = ok(["config", "set", "api_key", key], env)
    assert secret not in saved.output and f"{prefix}_{key_id}" in saved.output
    ok(["config", "set", "endpoint", serving_server.address], env)
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    assert json.loads(config.read_text()) == {"api_key": key, "endpoint": serving_server.address}
    assert not [p for p in config.parent.iterdir() if p != config], "a temporary file was left behind"

    shown = ok(["config", "get"], env).output
    assert secret not in shown and key_id in shown and serving_server.address in shown and "config" in shown
    assert ok(["config", "get", "api_key"], env).stdout.strip() == f"{prefix}_{key_id}…"
    as_json = ok_json(["config", "get"], env)
    assert as_json["api_key"] == {"value": f"{prefix}_{key_id}…", "source": "config"}  # type: ignore[index]
    assert secret not in json.dumps(as_json)

    # The config file alone is enough to talk to the server.
    assert isinstance(ok_json(["bundles", "list"], env), list)
    # The environment beats the config file; a flag beats the environment.
    bad_env = {**env, "LAUNCH_API_KEY": f"{prefix}_{key_id}_wrongsecret"}
    fails(["bundles", "list"], bad_env, 1, "UNAUTHENTICATED")
    assert ok_json(["config", "get", "api_key"], bad_env)["source"] == "env"  # type: ignore[index]
    ok(["--api-key", key, "bundles", "list"], bad_env)
    assert ok_json(["--api-key", key, "config", "get", "api_key"], bad_env)["source"] == "flag"  # type: ignore[index]

    # "-" reads the value from stdin (keeps it out of shell history); unset removes it.
    ok(["config", "set", "api_key", "-"], env, input=key + "\n")
    assert json.loads(config.read_text())["api_key"] == key
    ok(["config", "unset", "api_key"], env)
    assert "api_key" not in json.loads(config.read_text())
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    fails(["bundles", "list"], env, 2, "no API key")
    fails(["config", "set", "endpoint", "no-port-here"], env, 2, "HOST:PORT")
    fails(["config", "set", "colour", "blue"], env, 2)

    config.write_text("{not json")
    fails(["config", "get"], env, 2, "not valid JSON")


# ---- bundles ----------------------------------------------------------------------------------


def test_bundle_commands(env: dict[str, str | None], client: launch.LaunchClient) -> None:
    client.create_model_bundle("cli-bundle", ENV, predict_fn_or_cls=make_work(), requirements=["numpy==1.0"])

    assert "cli-bundle" in ok(["bundles", "list"], env).stdout
    listed = ok_json(["bundles", "list"], env)
    assert "cli-bundle" in [b["name"] for b in listed]  # type: ignore[union-attr]

    got = ok_json(["bundles", "get", "cli-bundle"], env)
    assert got["name"] == "cli-bundle" and got["packaging_type"] == "cloudpickle"  # type: ignore[index]
    assert got["requirements"] == ["numpy==1.0"] and got["env_params"] == ENV  # type: ignore[index]
    table = ok(["bundles", "get", "cli-bundle"], env).stdout
    assert "cloudpickle" in table and "numpy==1.0" in table

    assert ok_json(["bundles", "delete", "cli-bundle"], env) == {"name": "cli-bundle", "deleted": True}
    fails(["bundles", "get", "cli-bundle"], env, 1, "NOT_FOUND", "cli-bundle")
    fails(["bundles", "delete", "cli-bundle"], env, 1, "NOT_FOUND")


# ---- endpoints and requests -------------------------------------------------------------------


def test_sync_endpoint_lifecycle(env: dict[str, str | None], client: launch.LaunchClient, cleanup: list[str]) -> None:
    bundle = client.create_model_bundle("cli-work", ENV, predict_fn_or_cls=make_work(), requirements=[])
    client.create_model_endpoint("cli-sync", bundle, **SMALL, min_workers=1, max_workers=1, labels={"team": "ml"})
    cleanup.append("cli-sync")

    # Just created, it cannot be READY yet: a zero timeout reports the status it is stuck in.
    fails(["endpoints", "wait", "cli-sync", "--timeout", "0"], env, 1, "DEADLINE_EXCEEDED", "UPDATE_")
    assert "is READY" in ok(["endpoints", "wait", "cli-sync", "--timeout", "120", "--interval", "0.2"], env).stdout

    listing = ok(["endpoints", "list"], env).stdout
    assert "cli-sync" in listing and "READY" in listing
    listed = {e["name"]: e for e in ok_json(["endpoints", "list"], env)}  # type: ignore[union-attr]
    assert listed["cli-sync"]["endpoint_type"] == "sync"
    got = ok_json(["endpoints", "get", "cli-sync"], env)
    assert got["status"] == "READY" and got["bundle_name"] == "cli-work"  # type: ignore[index]
    assert got["workers"]["min_workers"] == 1 and got["labels"] == {"team": "ml"}  # type: ignore[index]
    assert "team=ml" in ok(["endpoints", "get", "cli-sync"], env).stdout

    sent = ok_json(["tasks", "send", "cli-sync", "--args", '{"x": 1}'], env)
    assert sent["status"] == "SUCCESS" and sent["result"] == {"x": 1} and sent["task_id"] is None  # type: ignore[index]
    assert "SUCCESS" in ok(["tasks", "send", "cli-sync", "--args", '{"x": "table"}'], env).stdout
    pickled = ok_json(["tasks", "send", "cli-sync", "--args", '{"x": 2}', "--return-pickled"], env)
    assert pickled["status"] == "SUCCESS" and pickled["result_url"]  # type: ignore[index]
    assert client.load_pickled_result(pickled["result_url"]) == {"x": 2}  # type: ignore[index]

    # A request whose function raises: the traceback is printed, then one error line, exit 1.
    failed = run(["tasks", "send", "cli-sync", "--args", '{"x": 3, "fail": true}'], env)
    assert failed.exit_code == 1 and "boom on 3" in failed.stdout
    assert failed.stderr.strip() == "error: request to 'cli-sync' finished with status FAILURE"

    edited = ok_json(["endpoints", "edit", "cli-sync", "--max-workers", "2", "--per-worker", "3", "--cpus", "1"], env)
    assert edited["workers"]["max_workers"] == 2 and edited["workers"]["per_worker"] == 3  # type: ignore[index]
    assert edited["status"] == "UPDATE_PENDING"  # type: ignore[index]
    assert ok_json(["endpoints", "wait", "cli-sync", "--timeout", "120", "--interval", "0.2"], env)["status"] == "READY"  # type: ignore[index]
    assert ok_json(["endpoints", "get", "cli-sync"], env)["workers"]["max_workers"] == 2  # type: ignore[index]

    logs = ok(["endpoints", "creation-logs", "cli-sync"], env).stdout
    assert "READY" in logs and "UPDATE_PENDING" in logs
    assert "READY" in ok_json(["endpoints", "creation-logs", "cli-sync"], env)["logs"]  # type: ignore[index]

    # Usage errors: exit 2 with click's message naming the option, never a traceback.
    fails(["tasks", "send", "cli-sync", "--args", "{not json"], env, 2, "--args", "not valid JSON")
    fails(["tasks", "send", "cli-sync", "--args", "[1, 2]"], env, 2, "--args", "JSON object")
    fails(["tasks", "send", "cli-sync"], env, 2, "exactly one of --args and --url")
    fails(["tasks", "send", "cli-sync", "--args", "{}", "--url", "http://x"], env, 2, "exactly one")
    fails(["endpoints", "edit", "cli-sync"], env, 2, "at least one setting")
    fails(["endpoints", "edit", "cli-sync", "--max-workers", "-1"], env, 2, "--max-workers")
    fails(["endpoints", "edit", "cli-sync", "--bundle", "no-such-bundle"], env, 1, "NOT_FOUND", "no-such-bundle")

    assert "deleted endpoint 'cli-sync'" in ok(["endpoints", "delete", "cli-sync"], env).stdout
    cleanup.remove("cli-sync")
    # Deletion is asynchronous (DELETE_IN_PROGRESS until the reconciler removes the row).
    wait_for(lambda: run(["endpoints", "get", "cli-sync"], env).exit_code == 1, 60, "cli-sync to disappear")
    fails(["endpoints", "get", "cli-sync"], env, 1, "NOT_FOUND: model endpoint 'cli-sync' not found")


def test_async_endpoint_send(env: dict[str, str | None], client: launch.LaunchClient, cleanup: list[str]) -> None:
    bundle = client.create_model_bundle("cli-async-work", ENV, predict_fn_or_cls=make_work(), requirements=[])
    ep = client.create_model_endpoint("cli-async", bundle, **SMALL, endpoint_type="async")
    assert isinstance(ep, launch.AsyncEndpoint)
    cleanup.append("cli-async")
    ok(["endpoints", "wait", "cli-async", "--timeout", "120", "--interval", "0.2"], env)
    assert ok_json(["endpoints", "get", "cli-async"], env)["endpoint_type"] == "async"  # type: ignore[index]

    sent = ok_json(["tasks", "send", "cli-async", "--args", '{"x": "queued"}', "--timeout", "60"], env)
    assert sent["status"] == "SUCCESS" and sent["result"] == {"x": "queued"} and sent["task_id"]  # type: ignore[index]
    assert client.get_async_response(sent["task_id"])["state"] == "SUCCESS"  # type: ignore[index]
    failed = run(["tasks", "send", "cli-async", "--args", '{"fail": true}'], env)
    assert failed.exit_code == 1 and "boom on None" in failed.stdout and "FAILURE" in failed.stderr
    assert ok_json(["endpoints", "delete", "cli-async"], env) == {"name": "cli-async", "deleted": True}
    cleanup.remove("cli-async")


def test_wait_reports_update_failed(
    env: dict[str, str | None], client: launch.LaunchClient, cleanup: list[str]
) -> None:
    bundle = client.create_model_bundle("cli-a100", ENV, predict_fn_or_cls=make_work(), requirements=[])
    client.create_model_endpoint("cli-a100", bundle, **SMALL, gpus=1, gpu_type="nvidia-ampere-a100")
    cleanup.append("cli-a100")
    fails(["endpoints", "wait", "cli-a100", "--timeout", "60", "--interval", "0.2"], env, 1, "UPDATE_FAILED", "A100")


def test_server_errors_are_one_line(serving_server: ServerHandle, env: dict[str, str | None]) -> None:
    bad_key = {**env, "LAUNCH_API_KEY": "lk_000000000000_notakey"}
    fails(["bundles", "list"], bad_key, 1, "UNAUTHENTICATED")
    fails(["endpoints", "list"], {**env, "LAUNCH_API_KEY": "garbage"}, 1, "UNAUTHENTICATED")
    fails(["bundles", "get", "nope"], env, 1, "NOT_FOUND: model bundle 'nope' not found")
    fails(["endpoints", "get", "nope"], env, 1, "NOT_FOUND")
    fails(["endpoints", "wait", "nope"], env, 1, "NOT_FOUND")
    fails(["endpoints", "creation-logs", "nope"], env, 1, "NOT_FOUND")
    fails(["endpoints", "delete", "nope"], env, 1, "NOT_FOUND")
    fails(["tasks", "send", "nope", "--args", "{}"], env, 1, "NOT_FOUND")
    fails(["endpoints", "frobnicate"], env, 2, "No such command")
    # Another owner's resources are invisible.
    other = {**env, "LAUNCH_API_KEY": serving_server.key_for("bob")}
    assert ok_json(["bundles", "list"], other) == []


# ---- batch jobs -------------------------------------------------------------------------------


def test_batch_job_usage_errors(env: dict[str, str | None], tmp_path: Path) -> None:
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text('{"x": 1}\n[2]\n')
    fails(["batch-jobs", "create", "b"], env, 2, "exactly one of --inputs-file and --urls-file")
    fails(["batch-jobs", "create", "b", "--inputs-file", str(inputs)], env, 2, "each line must be a JSON object")
    inputs.write_text('{"x": 1}\n')
    fails(["batch-jobs", "create", "b", "--inputs-file", str(inputs), "--option", "novalue"], env, 2, "key=value")
    fails(["batch-jobs", "create", "b", "--inputs-file", str(inputs), "--serialization-format", "xml"], env, 2)


@pytest.mark.skipif(not HAS_BATCH_SDK, reason="batch SDK not available")
def test_batch_job_commands(env: dict[str, str | None], client: launch.LaunchClient, tmp_path: Path) -> None:
    client.create_model_bundle("cli-batch", ENV, predict_fn_or_cls=make_work(), requirements=[])
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("\n".join(json.dumps({"x": i, "fail": i == 2}) for i in range(5)) + "\n")

    done = ok_json(
        ["batch-jobs", "create", "cli-batch", "--inputs-file", str(inputs), "--option", "max_workers=1",
         "--option", "memory=256Mi", "--label", "team=ml", "--wait", "--timeout", "180"],
        env,
    )  # fmt: skip
    assert done["status"] == "SUCCESS" and done["num_total"] == 5  # type: ignore[index]
    assert done["num_succeeded"] == 4 and done["num_failed"] == 1 and done["result"]  # type: ignore[index]
    again = ok_json(["batch-jobs", "get", done["job_id"]], env)  # type: ignore[index]
    assert again["status"] == "SUCCESS" and again["num_total"] == 5  # type: ignore[index]
    assert "SUCCESS" in ok(["batch-jobs", "get", done["job_id"], "--wait"], env).stdout  # type: ignore[index]

    created = ok_json(["batch-jobs", "create", "cli-batch", "--inputs-file", str(inputs)], env)
    cancelled = ok_json(["batch-jobs", "cancel", created["job_id"]], env)  # type: ignore[index]
    assert cancelled["status"] in ("CANCELLED", "SUCCESS")  # type: ignore[index]
    fails(["batch-jobs", "get", "no-such-job"], env, 1, "NOT_FOUND")
    fails(["batch-jobs", "create", "no-such-bundle", "--inputs-file", str(inputs)], env, 1, "NOT_FOUND")
