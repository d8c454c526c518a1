"""An endpoint's batch limits (max_batch_size, max_batch_wait_ms) through the SDK, the CLI and raw
update masks, against real servers (no Ray) on SQLite with local storage and on PostgreSQL with
moto S3: the endpoints stay UPDATE_PENDING, which is all that recording and reading settings needs."""

from __future__ import annotations

import json
from pathlib import Path

import launch
import pytest
from click.testing import CliRunner, Result
from google.protobuf import field_mask_pb2
from launch.cli.main import cli
from launch.v1 import model_endpoint_pb2 as epb
from launch.v1 import model_endpoint_pb2_grpc as egrpc

from launch_server.domain.batch_limits import MAX_BATCH_SIZE, MAX_BATCH_WAIT_MS
from tests.integration.test_endpoints import ENV, SMALL, client_for, make_echo
from tests.support import ServerHandle

OWNER = "batcher"


@pytest.fixture(scope="module")
def client(server: ServerHandle) -> launch.LaunchClient:
    made = client_for(server, OWNER)
    made.create_model_bundle("batch-b", ENV, predict_fn_or_cls=make_echo(), requirements=[])
    return made


def limits(client: launch.LaunchClient, name: str) -> tuple[int | None, int | None]:
    endpoint = client.get_model_endpoint(name)
    assert endpoint is not None
    return endpoint.model_endpoint.max_batch_size, endpoint.model_endpoint.max_batch_wait_ms


def test_create_get_list_and_edit_round_trip(client: launch.LaunchClient) -> None:
    created = client.create_model_endpoint("batch-set", "batch-b", **SMALL, max_batch_size=64, max_batch_wait_ms=0)
    assert (created.model_endpoint.max_batch_size, created.model_endpoint.max_batch_wait_ms) == (64, 0)
    assert limits(client, "batch-set") == (64, 0)
    listed = {e.model_endpoint.name: e.model_endpoint for e in client.list_model_endpoints()}
    assert (listed["batch-set"].max_batch_size, listed["batch-set"].max_batch_wait_ms) == (64, 0)

    before = created.model_endpoint.generation
    edited = client.edit_model_endpoint("batch-set", max_batch_wait_ms=MAX_BATCH_WAIT_MS)
    assert (edited.model_endpoint.max_batch_size, edited.model_endpoint.max_batch_wait_ms) == (64, MAX_BATCH_WAIT_MS)
    assert edited.model_endpoint.generation == before + 1  # a change the reconciler rolls out
    assert edited.model_endpoint.status == "UPDATE_PENDING"
    client.edit_model_endpoint("batch-set", cpus=2)  # an unrelated edit keeps both
    assert limits(client, "batch-set") == (64, MAX_BATCH_WAIT_MS)


def test_unset_is_none_until_set(client: launch.LaunchClient) -> None:
    client.create_model_endpoint("batch-unset", "batch-b", **SMALL)
    assert limits(client, "batch-unset") == (None, None)
    client.edit_model_endpoint("batch-unset", max_batch_size=MAX_BATCH_SIZE)
    assert limits(client, "batch-unset") == (MAX_BATCH_SIZE, None)


@pytest.mark.parametrize(
    ("keyword", "bad", "field"),
    [
        ("max_batch_size", 0, "endpoint.batching.max_batch_size"),
        ("max_batch_size", MAX_BATCH_SIZE + 1, "endpoint.batching.max_batch_size"),
        ("max_batch_wait_ms", -1, "endpoint.batching.max_wait_ms"),
        ("max_batch_wait_ms", MAX_BATCH_WAIT_MS + 1, "endpoint.batching.max_wait_ms"),
    ],
)
def test_out_of_bounds_limits_are_refused_on_create_and_edit(
    client: launch.LaunchClient, keyword: str, bad: int, field: str
) -> None:
    with pytest.raises(launch.InvalidArgumentError) as err:
        client.create_model_endpoint("batch-bad", "batch-b", **SMALL, **{keyword: bad})
    assert err.value.field == field
    assert client.get_model_endpoint("batch-bad") is None
    client.create_model_endpoint("batch-edit-bad", "batch-b", **SMALL, update_if_exists=True)
    with pytest.raises(launch.InvalidArgumentError) as err:
        client.edit_model_endpoint("batch-edit-bad", **{keyword: bad})
    assert err.value.field == field


def test_a_mask_path_without_its_value_clears_the_limit(server: ServerHandle, client: launch.LaunchClient) -> None:
    client.create_model_endpoint("batch-clear", "batch-b", **SMALL, max_batch_size=8, max_batch_wait_ms=5)
    stub = egrpc.ModelEndpointServiceStub(server.channel())
    metadata = (("authorization", f"Bearer {server.key_for(OWNER)}"),)

    def update(endpoint: epb.ModelEndpoint, *paths: str) -> epb.ModelEndpoint:
        request = epb.UpdateModelEndpointRequest(endpoint=endpoint, update_mask=field_mask_pb2.FieldMask(paths=paths))
        return stub.UpdateModelEndpoint(request, metadata=metadata, timeout=30).endpoint

    cleared = update(epb.ModelEndpoint(name="batch-clear"), "batching.max_wait_ms")
    assert cleared.batching.HasField("max_batch_size") and not cleared.batching.HasField("max_wait_ms")
    assert limits(client, "batch-clear") == (8, None)
    both = update(epb.ModelEndpoint(name="batch-clear", batching=epb.BatchSettings(max_wait_ms=2)), "batching")
    assert not both.batching.HasField("max_batch_size") and both.batching.max_wait_ms == 2
    assert limits(client, "batch-clear") == (None, 2)


def cli_env(server: ServerHandle, tmp_path: Path) -> dict[str, str]:
    return {
        "LAUNCH_API_KEY": server.key_for(OWNER),
        "LAUNCH_ENDPOINT": server.address,
        "LAUNCH_CONFIG": str(tmp_path / "absent" / "config.json"),
    }


def run_cli(server: ServerHandle, tmp_path: Path, *args: str) -> Result:
    result = CliRunner().invoke(cli, list(args), env=cli_env(server, tmp_path))
    assert result.exit_code == 0, result.output
    return result


def test_cli_edit_get_and_list_show_the_limits(
    server: ServerHandle, client: launch.LaunchClient, tmp_path: Path
) -> None:
    client.create_model_endpoint("batch-cli", "batch-b", **SMALL)
    shown = run_cli(server, tmp_path, "endpoints", "get", "batch-cli").stdout
    assert "the bundle's own" in shown
    edited = json.loads(
        run_cli(server, tmp_path, "-o", "json", "endpoints", "edit", "batch-cli", "--max-batch-size", "16").stdout
    )
    assert (edited["max_batch_size"], edited["max_batch_wait_ms"]) == (16, None)
    run_cli(server, tmp_path, "endpoints", "edit", "batch-cli", "--max-batch-wait-ms", "0")
    got = json.loads(run_cli(server, tmp_path, "-o", "json", "endpoints", "get", "batch-cli").stdout)
    assert (got["max_batch_size"], got["max_batch_wait_ms"]) == (16, 0)
    assert "max_batch_size=16, max_batch_wait_ms=0" in run_cli(server, tmp_path, "endpoints", "get", "batch-cli").stdout
    assert "max_batch_size=16" in run_cli(server, tmp_path, "endpoints", "list").stdout


def test_cli_refusals_are_one_line(server: ServerHandle, client: launch.LaunchClient, tmp_path: Path) -> None:
    client.create_model_endpoint("batch-cli-bad", "batch-b", **SMALL, update_if_exists=True)
    env = cli_env(server, tmp_path)
    over = str(MAX_BATCH_SIZE + 1)
    result = CliRunner().invoke(cli, ["endpoints", "edit", "batch-cli-bad", "--max-batch-size", over], env=env)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: INVALID_ARGUMENT") and "max_batch_size" in result.stderr
    local = CliRunner().invoke(cli, ["endpoints", "edit", "batch-cli-bad", "--max-batch-wait-ms", "-1"], env=env)
    assert local.exit_code == 2  # refused by the option's own range before any call
