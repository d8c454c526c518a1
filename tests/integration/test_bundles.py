"""Model bundles end to end: a real launch-server process, the real SDK and raw stubs, for SQLite
with local storage and for PostgreSQL with S3 (moto server on loopback)."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import zipfile
from pathlib import Path

import grpc
import launch
import pytest
from launch.v1 import model_bundle_pb2 as bpb
from launch.v1 import model_bundle_pb2_grpc as bgrpc
from launch.v1 import task_pb2 as tpb
from launch.v1 import task_pb2_grpc as tgrpc
from sqlalchemy import create_engine, text

from launch_server.store.db import normalize_url
from tests.support import ServerHandle

ENV = {"framework_type": "pytorch", "pytorch_image_tag": "2.1.0-cuda12.1-cudnn8-runtime"}


def client_for(server: ServerHandle, owner: str) -> launch.LaunchClient:
    return launch.LaunchClient(api_key=server.key_for(owner), endpoint=server.address)


def stored_objects(server: ServerHandle) -> list[str]:
    """Every object (and in-progress multipart upload or temp file) in the server's storage."""
    storage_url = server.env.get("LAUNCH_STORAGE_URL")
    if storage_url and storage_url.startswith("s3://"):
        import boto3

        bucket, prefix = storage_url.removeprefix("s3://").split("/", 1)
        s3 = boto3.client("s3", endpoint_url=server.env["LAUNCH_S3_ENDPOINT_URL"], region_name="us-east-1")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
        uploads = [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
        return keys + [f"multipart:{k}" for k in uploads if k.startswith(prefix)]
    root = server.data_dir / "storage"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def bundle_stub(server: ServerHandle) -> bgrpc.ModelBundleServiceStub:
    return bgrpc.ModelBundleServiceStub(server.channel())


def auth(server: ServerHandle, owner: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {server.key_for(owner)}"),)


def raw_upload(server, owner, spec, data, *, size=None, sha=None, chunks=None):  # type: ignore[no-untyped-def]
    header = bpb.UploadModelBundleHeader(
        bundle=spec,
        size_bytes=len(data) if size is None else size,
        sha256=hashlib.sha256(data).hexdigest() if sha is None else sha,
    )

    def messages():  # type: ignore[no-untyped-def]
        yield bpb.UploadModelBundleRequest(header=header)
        yield from (bpb.UploadModelBundleRequest(chunk=c) for c in (chunks if chunks is not None else [data]))

    return bundle_stub(server).UploadModelBundle(messages(), metadata=auth(server, owner), timeout=30)


def zip_spec(name: str) -> bpb.ModelBundleSpec:
    return bpb.ModelBundleSpec(
        name=name,
        packaging_type=bpb.PACKAGING_TYPE_ZIP,
        env_params=ENV,
        metadata={"load_predict_fn_module_path": "pkg.mod.f", "load_model_fn_module_path": "pkg.mod.g"},
    )


def make_zip(entries: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, content in entries.items():
            zf.writestr(name, content)
    return buffer.getvalue()


# ---- the documented happy paths ------------------------------------------------------------------


def test_three_cloudpickle_forms_round_trip(server: ServerHandle) -> None:
    client = client_for(server, "alice")
    a = client.create_model_bundle("form-a", ENV, predict_fn_or_cls=lambda x: x, requirements=[])
    b = client.create_model_bundle(
        "form-b",
        ENV,
        load_predict_fn=lambda model: lambda x: model + x,
        model=41,
        requirements=["numpy==2.1.0"],
    )
    c = client.create_model_bundle(
        "form-c",
        ENV,
        load_predict_fn=lambda model, app_config=None: lambda x: x,
        load_model_fn=lambda: "weights",
        requirements=[],
        app_config={"threshold": 3, "labels": ["a", "b"]},
    )
    assert (a.packaging_type, b.packaging_type, c.packaging_type) == ("cloudpickle",) * 3
    got = client.get_model_bundle("form-c")
    assert got.app_config == {"threshold": 3, "labels": ["a", "b"]}
    assert isinstance(got.app_config["threshold"], int)
    assert got.python_version == f"{os.sys.version_info.major}.{os.sys.version_info.minor}"
    assert client.get_model_bundle("form-b").requirements == ["numpy==2.1.0"]
    assert got.env_params == ENV
    assert len(got.sha256) == 64 and got.size_bytes > 0 and got.bundle_id
    names = {bundle.name for bundle in client.list_model_bundles()}
    assert {"form-a", "form-b", "form-c"} <= names
    for name in ("form-a", "form-b", "form-c"):
        assert client.delete_model_bundle(name) is True
    assert not {"form-a", "form-b", "form-c"} & {b.name for b in client.list_model_bundles()}


def test_app_config_from_yaml_file(server: ServerHandle, tmp_path: Path) -> None:
    config = tmp_path / "app.yaml"
    config.write_text("batch_size: 8\nmodel: {name: tiny}\n")
    bundle = client_for(server, "alice").create_model_bundle(
        "yaml-config", ENV, predict_fn_or_cls=lambda x: x, requirements=[], app_config=str(config)
    )
    assert bundle.app_config == {"batch_size": 8, "model": {"name": "tiny"}}


def test_bundle_from_dirs_keeps_folder_names(server: ServerHandle, tmp_path: Path) -> None:
    root = tmp_path / "my_root"
    (root / "my_module1").mkdir(parents=True)
    (root / "my_module2" / "sub").mkdir(parents=True)
    (root / "my_module1" / "__init__.py").write_text("")
    (root / "my_module1" / "my_inference_file.py").write_text("def f(model):\n    return model\n")
    (root / "my_module2" / "sub" / "weights.txt").write_text("w")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# pinned\nrequests==2.32.3\n\n  six  # trailing comment\n")
    bundle = client_for(server, "alice").create_model_bundle_from_dirs(
        "zipped",
        base_paths=[str(root / "my_module1"), str(root / "my_module2")],
        requirements_path=str(requirements),
        env_params=ENV,
        load_predict_fn_module_path="my_module1.my_inference_file.f",
        load_model_fn_module_path="my_module2.sub.load",
    )
    assert bundle.packaging_type == "zip"
    assert bundle.requirements == ["requests==2.32.3", "six"]
    assert bundle.metadata["load_predict_fn_module_path"] == "my_module1.my_inference_file.f"
    data = read_artifact(server, bundle.location)
    assert hashlib.sha256(data).hexdigest() == bundle.sha256
    names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    assert {
        "my_module1/__init__.py",
        "my_module1/my_inference_file.py",
        "my_module2/sub/weights.txt",
    } == names


def read_artifact(server: ServerHandle, location: str) -> bytes:
    if location.startswith("s3://"):
        import boto3

        bucket, key = location.removeprefix("s3://").split("/", 1)
        s3 = boto3.client("s3", endpoint_url=server.env["LAUNCH_S3_ENDPOINT_URL"], region_name="us-east-1")
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return Path(location.removeprefix("file://")).read_bytes()


def test_requirements_inferred_from_globals_copy(server: ServerHandle) -> None:
    import yaml  # an installed third-party package the bundle "uses"

    bundle = client_for(server, "alice").create_model_bundle(
        "inferred", ENV, predict_fn_or_cls=lambda x: x, globals_copy={"yaml": yaml, "os": os}
    )
    assert any(r.lower().startswith("pyyaml==") for r in bundle.requirements), bundle.requirements
    assert not any(r.startswith(("os", "launch", "grpcio")) for r in bundle.requirements)


def test_upload_is_idempotent_with_request_id(server: ServerHandle) -> None:
    data = make_zip({"pkg/mod.py": "def f(m): return m\ndef g(): return 1\n"})
    spec = zip_spec("idem")
    header = bpb.UploadModelBundleHeader(
        request_id="retry-1", bundle=spec, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest()
    )
    stub = bundle_stub(server)
    messages = [bpb.UploadModelBundleRequest(header=header), bpb.UploadModelBundleRequest(chunk=data)]
    first = stub.UploadModelBundle(iter(messages), metadata=auth(server, "alice"))
    second = stub.UploadModelBundle(iter(messages), metadata=auth(server, "alice"))
    assert first.model_bundle.bundle_id == second.model_bundle.bundle_id


def test_list_pages_are_complete_and_distinct(server: ServerHandle) -> None:
    client = client_for(server, "pager")
    for i in range(5):
        client.create_model_bundle(f"page-{i}", ENV, predict_fn_or_cls=lambda x: x, requirements=[])
    stub, seen, token, pages = bundle_stub(server), [], "", 0
    while True:
        response = stub.ListModelBundles(
            bpb.ListModelBundlesRequest(page_size=2, page_token=token), metadata=auth(server, "pager")
        )
        seen += [b.name for b in response.model_bundles]
        pages += 1
        token = response.next_page_token
        if not token:
            break
    assert pages == 3
    assert seen == [f"page-{i}" for i in reversed(range(5))]


def test_self_hosted_registration(server: ServerHandle, tmp_path: Path) -> None:
    storage_url = server.env.get("LAUNCH_STORAGE_URL") or (server.data_dir / "storage").as_uri()
    client = launch.LaunchClient(api_key=server.key_for("alice"), endpoint=server.address, self_hosted=True)
    uploaded: list[str] = []

    def upload(data: bytes, url: str) -> None:
        if url.startswith("s3://"):
            import boto3

            bucket, key = url.removeprefix("s3://").split("/", 1)
            s3 = boto3.client("s3", endpoint_url=server.env["LAUNCH_S3_ENDPOINT_URL"], region_name="us-east-1")
            s3.put_object(Bucket=bucket, Key=key, Body=data)
        else:
            path = Path(url.removeprefix("file://"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        uploaded.append(url)

    client.register_upload_bundle_fn(upload)
    client.register_bundle_location_fn(lambda: f"{storage_url}/self-hosted/b{len(uploaded)}.pkl")
    bundle = client.create_model_bundle("self-hosted", ENV, predict_fn_or_cls=lambda x: x, requirements=[])
    assert bundle.location == uploaded[0] and bundle.size_bytes > 0

    outside = (tmp_path / "elsewhere.pkl").as_uri()
    with pytest.raises(launch.InvalidArgumentError) as err:
        client.create_model_bundle("outside", ENV, predict_fn_or_cls=lambda x: x, requirements=[], bundle_url=outside)
    assert err.value.field == "bundle.location"
    with pytest.raises(launch.NotFoundError):
        client.get_model_bundle("outside")

    client.register_upload_bundle_fn(lambda data, url: None)  # "uploads" nothing
    with pytest.raises(launch.InvalidArgumentError, match="no object"):
        client.create_model_bundle(
            "missing",
            ENV,
            predict_fn_or_cls=lambda x: x,
            requirements=[],
            bundle_url=f"{storage_url}/self-hosted/never-written.pkl",
        )


# ---- bad input: clear errors, nothing half-written ----------------------------------------------


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("", "must not be empty"), ("x" * 64, "at most 63"), ("Has Space", "lowercase"), ("-lead", "lowercase")],
)
def test_bad_names(server: ServerHandle, name: str, fragment: str) -> None:
    with pytest.raises(launch.InvalidArgumentError) as err:
        client_for(server, "alice").create_model_bundle(name, ENV, predict_fn_or_cls=lambda x: x, requirements=[])
    assert err.value.field == "header.bundle.name"
    assert fragment in err.value.message
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_duplicate_name_already_exists_and_leaves_nothing(server: ServerHandle) -> None:
    client = client_for(server, "alice")
    client.create_model_bundle("dup", ENV, predict_fn_or_cls=lambda x: x, requirements=[])
    before = stored_objects(server)
    with pytest.raises(launch.AlreadyExistsError) as err:
        client.create_model_bundle("dup", ENV, predict_fn_or_cls=lambda x: x, requirements=[])
    assert err.value.reason == "ERROR_REASON_ALREADY_EXISTS"
    assert stored_objects(server) == before


def test_zero_or_two_forms_rejected_before_upload(server: ServerHandle) -> None:
    client = client_for(server, "alice")
    before = stored_objects(server)
    with pytest.raises(ValueError, match="exactly"):
        client.create_model_bundle("no-form", ENV, requirements=[])
    with pytest.raises(ValueError, match="exactly"):
        client.create_model_bundle(
            "two-forms",
            ENV,
            predict_fn_or_cls=lambda x: x,
            load_predict_fn=lambda m: m,
            model=1,
            requirements=[],
        )
    with pytest.raises(ValueError, match="exactly"):
        client.create_model_bundle(
            "model-and-loader",
            ENV,
            load_predict_fn=lambda m: m,
            model=1,
            load_model_fn=lambda: 1,
            requirements=[],
        )
    assert stored_objects(server) == before
    assert not {"no-form", "two-forms", "model-and-loader"} & {b.name for b in client.list_model_bundles()}


@pytest.mark.parametrize(
    ("env_params", "field"),
    [
        ({}, "header.bundle.env_params.framework_type"),
        ({"framework_type": "pytorch"}, "header.bundle.env_params.pytorch_image_tag"),
        ({"framework_type": "tensorflow"}, "header.bundle.env_params.tensorflow_version"),
        ({"framework_type": "jax"}, "header.bundle.env_params.framework_type"),
    ],
)
def test_env_params_validated(server: ServerHandle, env_params: dict, field: str) -> None:
    with pytest.raises(launch.InvalidArgumentError) as err:
        client_for(server, "alice").create_model_bundle(
            "env-bad", env_params, predict_fn_or_cls=lambda x: x, requirements=[]
        )
    assert err.value.field == field


def test_unreadable_requirements_file(server: ServerHandle, tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    with pytest.raises(ValueError, match="requirements_path"):
        client_for(server, "alice").create_model_bundle_from_dirs(
            "no-reqs", [str(tmp_path / "pkg")], str(tmp_path / "missing.txt"), ENV, "pkg.a.f", "pkg.a.g"
        )


def test_zip_entry_escaping_its_folder_is_refused(server: ServerHandle) -> None:
    before = stored_objects(server)
    data = make_zip({"pkg/mod.py": "def f(m): return m\n", "pkg/../../evil.py": "x = 1\n"})
    with pytest.raises(grpc.RpcError) as err:
        raw_upload(server, "alice", zip_spec("zip-slip"), data)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "escape" in err.value.details()
    assert stored_objects(server) == before
    with pytest.raises(launch.NotFoundError):
        client_for(server, "alice").get_model_bundle("zip-slip")


def test_upload_over_limit_is_resource_exhausted(server: ServerHandle) -> None:
    with pytest.raises(grpc.RpcError) as err:
        raw_upload(server, "alice", zip_spec("too-big"), b"x", size=5 << 30)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "upload limit" in err.value.details()


def test_corrupt_upload_leaves_no_bundle_and_no_object(server: ServerHandle) -> None:
    before = stored_objects(server)
    data = make_zip({"pkg/mod.py": "def f(m): return m\n"})
    with pytest.raises(grpc.RpcError) as err:
        raw_upload(server, "alice", zip_spec("corrupt"), data, sha="0" * 64)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "sha256" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        raw_upload(server, "alice", zip_spec("short"), data, size=len(data) + 10)
    assert "declared" in err.value.details()
    assert stored_objects(server) == before


def test_interrupted_upload_leaves_no_bundle_and_no_object(server: ServerHandle) -> None:
    """The client dies mid-stream (9 MiB sent of 20 MiB, past one S3 multipart part)."""
    before = stored_objects(server)
    data = os.urandom(20 << 20)
    spec = bpb.ModelBundleSpec(
        name="interrupted",
        packaging_type=bpb.PACKAGING_TYPE_CLOUDPICKLE,
        form=bpb.BUNDLE_FORM_PREDICT_FN_OR_CLS,
        python_version="3.11",
        env_params=ENV,
    )
    header = bpb.UploadModelBundleHeader(bundle=spec, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())

    class ClientCrash(Exception):
        pass

    def messages():  # type: ignore[no-untyped-def]
        yield bpb.UploadModelBundleRequest(header=header)
        for i in range(9):
            yield bpb.UploadModelBundleRequest(chunk=data[i << 20 : (i + 1) << 20])
        raise ClientCrash

    with pytest.raises((grpc.RpcError, ClientCrash)):
        bundle_stub(server).UploadModelBundle(messages(), metadata=auth(server, "alice"), timeout=30)
    with pytest.raises(launch.NotFoundError):
        client_for(server, "alice").get_model_bundle("interrupted")
    import time

    deadline = time.monotonic() + 10
    while stored_objects(server) != before and time.monotonic() < deadline:
        time.sleep(0.2)  # the server aborts the write when it sees the stream end
    assert stored_objects(server) == before


def test_server_never_unpickles_a_bundle(server: ServerHandle, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled-on-server"

    class Tripwire:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (open, (str(marker), "w"))

    data = pickle.dumps(Tripwire())
    spec = bpb.ModelBundleSpec(
        name="tripwire",
        packaging_type=bpb.PACKAGING_TYPE_CLOUDPICKLE,
        form=bpb.BUNDLE_FORM_PREDICT_FN_OR_CLS,
        python_version="3.11",
        env_params=ENV,
    )
    response = raw_upload(server, "alice", spec, data)
    assert response.model_bundle.name == "tripwire"
    client_for(server, "alice").get_model_bundle("tripwire")
    assert not marker.exists()


def test_delete_in_use_is_failed_precondition(server: ServerHandle) -> None:
    client = client_for(server, "alice")
    bundle = client.create_model_bundle("in-use", ENV, predict_fn_or_cls=lambda x: x, requirements=[])
    engine = create_engine(normalize_url(server.database_url))
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO model_endpoints (endpoint_id, owner, name, bundle_id, endpoint_type, status, "
                "status_reason, cpus, memory, gpus, gpu_type, storage, min_workers, max_workers, per_worker, "
                "post_inference_hooks, default_callback_url, labels, task_expiry_seconds, max_queue_size, "
                "generation, created_at, updated_at) VALUES ('e1', 'alice', 'uses-it', :b, 'SYNC', "
                "'READY', '', 1, '1Gi', 0, '', '', 0, 1, 1, '[]', '', '{}', 86400, 100, 1, :t, :t)"
            ),
            {"b": bundle.bundle_id, "t": bundle.created_at},
        )
    try:
        with pytest.raises(launch.FailedPreconditionError, match="uses-it"):
            client.delete_model_bundle("in-use")
        assert client.get_model_bundle("in-use").bundle_id == bundle.bundle_id
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM model_endpoints WHERE endpoint_id = 'e1'"))
        engine.dispose()


# ---- auth and owners ---------------------------------------------------------------------------


def test_missing_wrong_and_revoked_keys(server: ServerHandle) -> None:
    stub = bundle_stub(server)
    request = bpb.ListModelBundlesRequest()
    for metadata in [(), (("authorization", "Bearer lk_nope_nope"),), (("authorization", "Basic abc"),)]:
        with pytest.raises(grpc.RpcError) as err:
            stub.ListModelBundles(request, metadata=metadata)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    key = server.cli("keys", "create", "--owner", "carol").stdout.strip()
    stub.ListModelBundles(request, metadata=(("authorization", f"Bearer {key}"),))
    key_id = key.split("_")[1]
    assert "revoked" in server.cli("keys", "revoke", key_id).stdout
    with pytest.raises(launch.UnauthenticatedError, match="revoked"):
        launch.LaunchClient(api_key=key, endpoint=server.address).list_model_bundles()
    listing = server.cli("keys", "list", "--owner", "carol").stdout
    assert key_id in listing and key.split("_")[2] not in listing


def test_owners_are_isolated(server: ServerHandle) -> None:
    alice, bob = client_for(server, "alice"), client_for(server, "bob")
    alice.create_model_bundle("private", ENV, predict_fn_or_cls=lambda x: x, requirements=[])
    assert "private" not in {b.name for b in bob.list_model_bundles()}
    with pytest.raises(launch.NotFoundError):
        bob.get_model_bundle("private")
    with pytest.raises(launch.NotFoundError):
        bob.delete_model_bundle("private")
    # The same name is free for another owner.
    bob.create_model_bundle("private", ENV, predict_fn_or_cls=lambda x: x, requirements=[])
    assert alice.get_model_bundle("private").bundle_id != bob.get_model_bundle("private").bundle_id


def test_sdk_repr_never_shows_the_key(server: ServerHandle) -> None:
    key = server.key_for("alice")
    client = launch.LaunchClient(api_key=key, endpoint=server.address)
    assert key.split("_")[2] not in repr(client) and key.split("_")[2] not in repr(client.connection)


def test_later_rpcs_answer_unimplemented_with_reason(server: ServerHandle) -> None:
    stub = tgrpc.TaskServiceStub(server.channel())
    with pytest.raises(grpc.RpcError) as err:
        stub.GetTask(tpb.GetTaskRequest(task_id="t"), metadata=auth(server, "alice"))
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    error = launch.errors.from_rpc_error(err.value)
    assert error.reason == "ERROR_REASON_NOT_IMPLEMENTED"


def test_health_service_is_open(server: ServerHandle) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    response = health_pb2_grpc.HealthStub(server.channel()).Check(health_pb2.HealthCheckRequest(service=""))
    assert response.status == health_pb2.HealthCheckResponse.SERVING
