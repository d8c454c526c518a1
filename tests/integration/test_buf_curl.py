"""Operator tooling check: `buf curl` (a generic gRPC client that learns the schema only through
server reflection) can list the services, upload a zip bundle over the client-streaming
UploadModelBundle RPC, list it back and check health. docs/grpc-cli.md shows the same commands, so
this test keeps that page honest. Runs against both backends (see conftest); the PredictStream test
needs endpoints, so it has a server with its serving layer of its own (one backend: streaming does
not touch the store)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import launch
import pytest

from tests.integration.test_endpoints import ENV, SMALL, client_for, wait_status
from tests.server_fixtures import serving_server_fixture
from tests.support import REPO, ServerHandle

BUF = REPO / "node_modules" / ".bin" / "buf"
pytestmark = pytest.mark.skipif(
    not BUF.exists(), reason="needs node_modules/.bin/buf (run `npm install` for @bufbuild/buf)"
)

LAUNCH_SERVICES = {
    "launch.v1.ModelBundleService",
    "launch.v1.ModelEndpointService",
    "launch.v1.InferenceService",
    "launch.v1.TaskService",
    "launch.v1.BatchJobService",
}
# buf curl exits with the gRPC status code shifted left by three bits when the RPC itself fails.
UNAUTHENTICATED_EXIT = 16 << 3
INVALID_ARGUMENT_EXIT = 3 << 3


def buf_curl(
    server: ServerHandle, *args: str, key: str | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess:
    """Runs `buf curl` the way docs/grpc-cli.md tells operators to: gRPC over h2c, via reflection."""
    cmd = [str(BUF), "curl", "--protocol", "grpc", "--http2-prior-knowledge"]
    if key is not None:
        cmd += ["-H", f"authorization: Bearer {key}"]
    if stdin is not None:
        cmd += ["-d", "@-"]
    *flags, path = args
    cmd += [*flags, f"http://{server.address}{path}"]
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120, cwd=REPO)


streaming_server = serving_server_fixture("buf-stream", "b{dir}")


def json_documents(text: str) -> list[dict]:
    """buf curl prints each message of a stream as its own (indented) JSON document."""
    decoder, documents, text, at = json.JSONDecoder(), [], text.strip(), 0
    while at < len(text):
        document, end = decoder.raw_decode(text, at)
        documents.append(document)
        at = len(text) - len(text[end:].lstrip())
    return documents


def small_zip() -> bytes:
    """A real zip bundle: pkg/mod.py holds load_model_fn g and load_predict_fn f."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("pkg/__init__.py", "")
        zf.writestr(
            "pkg/mod.py",
            "def g():\n    return 3\n\n\ndef f(model):\n    return lambda request: request * model\n",
        )
    return buf.getvalue()


def upload_body(name: str, data: bytes, sha256: str | None = None, chunks: int = 2) -> str:
    """The header message then the artifact in `chunks` pieces, as concatenated JSON documents."""
    header = {
        "header": {
            "request_id": f"buf-curl-{name}",
            "bundle": {
                "name": name,
                "packaging_type": "PACKAGING_TYPE_ZIP",
                "env_params": {"framework_type": "pytorch", "pytorch_image_tag": "2.1.0"},
                "metadata": {
                    "load_predict_fn_module_path": "pkg.mod.f",
                    "load_model_fn_module_path": "pkg.mod.g",
                },
            },
            "size_bytes": str(len(data)),
            "sha256": sha256 or hashlib.sha256(data).hexdigest(),
        }
    }
    step = -(-len(data) // chunks)
    pieces = [data[i : i + step] for i in range(0, len(data), step)]
    return "\n".join(json.dumps(m) for m in [header, *({"chunk": base64.b64encode(p).decode()} for p in pieces)])


def test_list_services_through_reflection(server: ServerHandle) -> None:
    result = buf_curl(server, "--list-services", "")
    assert result.returncode == 0, result.stderr
    services = set(result.stdout.split())
    assert LAUNCH_SERVICES | {"grpc.health.v1.Health"} <= services
    assert {s for s in services if s.startswith("launch.")} == LAUNCH_SERVICES


def test_list_methods_of_bundle_service(server: ServerHandle) -> None:
    # With reflection, --list-methods takes the base URL and lists every service's methods.
    result = buf_curl(server, "--list-methods", "")
    assert result.returncode == 0, result.stderr
    methods = {m for m in result.stdout.split() if m.startswith("launch.v1.ModelBundleService/")}
    assert methods == {
        f"launch.v1.ModelBundleService/{m}"
        for m in (
            "UploadModelBundle",
            "CreateModelBundle",
            "GetModelBundle",
            "ListModelBundles",
            "DeleteModelBundle",
        )
    }


def test_health_check_needs_no_key(server: ServerHandle) -> None:
    result = buf_curl(server, "/grpc.health.v1.Health/Check")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"status": "SERVING"}


def test_upload_zip_bundle_then_list_it(server: ServerHandle) -> None:
    key = server.key_for("carol")
    data = small_zip()
    result = buf_curl(
        server, "/launch.v1.ModelBundleService/UploadModelBundle", key=key, stdin=upload_body("buf-zip", data)
    )
    assert result.returncode == 0, result.stderr
    bundle = json.loads(result.stdout)["modelBundle"]
    assert bundle["name"] == "buf-zip"
    assert bundle["packagingType"] == "PACKAGING_TYPE_ZIP"
    assert bundle["sizeBytes"] == str(len(data))
    assert bundle["sha256"] == hashlib.sha256(data).hexdigest()

    listed = buf_curl(server, "/launch.v1.ModelBundleService/ListModelBundles", key=key)
    assert listed.returncode == 0, listed.stderr
    bundles = json.loads(listed.stdout)["modelBundles"]
    assert [b["name"] for b in bundles] == ["buf-zip"]
    assert bundles[0]["bundleId"] == bundle["bundleId"]
    assert bundles[0]["metadata"] == {
        "load_predict_fn_module_path": "pkg.mod.f",
        "load_model_fn_module_path": "pkg.mod.g",
    }


def test_upload_with_wrong_sha256_leaves_no_bundle(server: ServerHandle) -> None:
    key = server.key_for("dave")
    body = upload_body("buf-corrupt", small_zip(), sha256="0" * 64)
    result = buf_curl(server, "/launch.v1.ModelBundleService/UploadModelBundle", key=key, stdin=body)
    assert result.returncode >= 8, (result.returncode, result.stdout, result.stderr)
    listed = buf_curl(server, "/launch.v1.ModelBundleService/ListModelBundles", key=key)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == {}


def test_bad_key_is_unauthenticated(server: ServerHandle) -> None:
    result = buf_curl(server, "/launch.v1.ModelBundleService/ListModelBundles", key="lk_bad_key")
    assert result.returncode == UNAUTHENTICATED_EXIT, (result.returncode, result.stderr)
    assert '"code": "unauthenticated"' in result.stderr


def make_counter() -> Callable:
    """Yields {"i": 0..n-1}, `pause` seconds apart; raises after `fail_after` values when set."""

    def count(n: int, fail_after: int = -1, pause: float = 0.0):  # type: ignore[no-untyped-def]
        import time

        for i in range(n):
            if i == fail_after:
                raise ValueError(f"failed after {i} values")
            if i and pause:
                time.sleep(pause)
            yield {"i": i}

    return count


@pytest.fixture(scope="module")
def chat(streaming_server: ServerHandle) -> Iterator[launch.Endpoint]:
    """The streaming endpoint docs/serving.md and docs/grpc-cli.md stream from."""
    client = client_for(streaming_server)
    bundle = client.create_model_bundle("chat", ENV, predict_fn_or_cls=make_counter(), requirements=[])
    ep = client.create_model_endpoint("chat", bundle, **SMALL, endpoint_type="streaming", min_workers=1)
    wait_status(ep, "READY")
    yield ep
    client.delete_model_endpoint(ep)


def test_predict_stream_prints_one_document_per_value(streaming_server: ServerHandle, chat) -> None:  # type: ignore[no-untyped-def]
    # The docs' command: -d with the request as JSON, the method's full path on the server's URL.
    key = streaming_server.key_for("alice")
    body = json.dumps({"endpoint_name": "chat", "input": {"args_json": json.dumps({"n": 3})}})
    result = buf_curl(streaming_server, "-d", body, "/launch.v1.InferenceService/PredictStream", key=key)
    assert result.returncode == 0, result.stderr
    assert stream_values(result.stdout) == [
        {"state": "RESULT_STATE_SUCCESS", "result": json.dumps({"i": i})} for i in range(3)
    ]

    # docs/grpc-cli.md's command: values yielded apart arrive one document each, nothing in `more`.
    body = json.dumps({"endpoint_name": "chat", "input": {"args_json": json.dumps({"n": 3, "pause": 0.3})}})
    result = buf_curl(streaming_server, "-d", body, "/launch.v1.InferenceService/PredictStream", key=key)
    assert result.returncode == 0, result.stderr
    assert json_documents(result.stdout) == [
        {"result": {"state": "RESULT_STATE_SUCCESS", "result": json.dumps({"i": i})}} for i in range(3)
    ]

    body = json.dumps({"endpoint_name": "chat", "input": {"args_json": json.dumps({"n": 3, "fail_after": 1})}})
    result = buf_curl(streaming_server, "-d", body, "/launch.v1.InferenceService/PredictStream", key=key)
    assert result.returncode == 0, result.stderr  # the failure is the last message; the call ends OK
    first, last = stream_values(result.stdout)
    assert first == {"state": "RESULT_STATE_SUCCESS", "result": '{"i": 0}'}
    assert last["state"] == "RESULT_STATE_FAILURE"
    assert "failed after 1 values" in last["traceback"]


def stream_values(stdout: str) -> list[dict[str, Any]]:
    """The values of buf curl's PredictStream documents, in order: each message's `result`, then
    the values that came along with it in `more`."""
    return [value for doc in json_documents(stdout) for value in (doc["result"], *doc.get("more", []))]


def test_predict_stream_with_return_pickled_fails_the_call(streaming_server: ServerHandle, chat) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps({"endpoint_name": "chat", "input": {"args_json": "{}", "return_pickled": True}})
    key = streaming_server.key_for("alice")
    result = buf_curl(streaming_server, "-d", body, "/launch.v1.InferenceService/PredictStream", key=key)
    assert result.returncode == INVALID_ARGUMENT_EXIT, (result.returncode, result.stderr)
    assert '"code": "invalid_argument"' in result.stderr
    assert result.stdout.strip() == ""
