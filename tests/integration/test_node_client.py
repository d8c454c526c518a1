"""Cross-language contract check: bundles the Python SDK registers are listed by a Node.js client
that loads proto/launch/v1/model_bundle.proto at run time (no generated code), so the .proto files,
not the Python stubs, are what both sides agree on. Runs against both backends (see conftest)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import launch
import pytest

from tests.support import REPO, ServerHandle

SCRIPT = REPO / "tests" / "node" / "list_bundles.js"
ENV_PARAMS = {"framework_type": "pytorch", "pytorch_image_tag": "2.1.0"}

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(
    NODE is None
    or not (REPO / "node_modules" / "@grpc" / "grpc-js").is_dir()
    or not (REPO / "node_modules" / "@grpc" / "proto-loader").is_dir(),
    reason="needs `node` on PATH and node_modules/@grpc/{grpc-js,proto-loader} (run `npm install`)",
)


def run_node(address: str, api_key: str) -> subprocess.CompletedProcess:
    """Runs the Node client with a clean LAUNCH_* environment so only the arguments count."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAUNCH_")}
    return subprocess.run(
        [str(NODE), str(SCRIPT), address, api_key],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_node_client_lists_bundles_created_by_python_sdk(server: ServerHandle) -> None:
    client = launch.LaunchClient(api_key=server.key_for("alice"), endpoint=server.address)
    names = {"node-check-one", "node-check-two"}
    for name in sorted(names):
        client.create_model_bundle(name, env_params=ENV_PARAMS, predict_fn_or_cls=lambda x: x, requirements=[])
    assert {b.name for b in client.list_model_bundles()} == names

    result = run_node(server.address, server.key_for("alice"))
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)["names"]
    assert sorted(listed) == sorted(names)
    assert listed == ["node-check-two", "node-check-one"], "newest first, as the contract says"


def test_node_client_sees_only_its_owners_bundles(server: ServerHandle) -> None:
    result = run_node(server.address, server.key_for("bob"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"names": []}


def test_node_client_with_bad_key_is_unauthenticated(server: ServerHandle) -> None:
    bad_key = server.key_for("alice")[:-4] + "xxxx"
    result = run_node(server.address, bad_key)
    assert result.returncode != 0
    assert "UNAUTHENTICATED" in result.stderr
    assert result.stdout == ""
