"""A client-named location is checked in canonical form (decoded once, normalized, links resolved),
so no spelling of a path lets one owner read the server's files or another owner's objects:
DownloadResult answers NOT_FOUND and self-hosted bundle locations answer INVALID_ARGUMENT naming
the field (batch-input locations go through the same check: test_batch_jobs.py). Real servers,
on local storage and on moto S3."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import launch
import pytest
from launch.v1 import model_bundle_pb2 as bpb
from launch.v1 import model_bundle_pb2_grpc as bgrpc
from launch.v1 import task_pb2 as tpb
from launch.v1 import task_pb2_grpc as tgrpc

from launch_server.domain.ownership import owner_tag
from tests.support import ServerHandle

ENV = {"framework_type": "pytorch", "pytorch_image_tag": "2.1.0"}


def auth(server: ServerHandle, owner: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {server.key_for(owner)}"),)


def storage_root(server: ServerHandle) -> str:
    return server.env.get("LAUNCH_STORAGE_URL") or (server.data_dir / "storage").resolve().as_uri()


def results_folder(server: ServerHandle, owner: str) -> str:
    return f"{storage_root(server)}/results/{owner_tag(owner)}"


def put_object(server: ServerHandle, url: str, data: bytes) -> None:
    """Writes an object straight into the server's storage, as the server would."""
    if url.startswith("s3://"):
        import boto3

        bucket, key = url.removeprefix("s3://").split("/", 1)
        s3 = boto3.client("s3", endpoint_url=server.env["LAUNCH_S3_ENDPOINT_URL"], region_name="us-east-1")
        s3.put_object(Bucket=bucket, Key=key, Body=data)
    else:
        path = Path(url.removeprefix("file://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def download(server: ServerHandle, owner: str, url: str) -> bytes:
    stub = tgrpc.TaskServiceStub(server.channel())
    chunks = stub.DownloadResult(tpb.DownloadResultRequest(result_url=url), metadata=auth(server, owner), timeout=30)
    return b"".join(c.chunk for c in chunks)


def escapes(server: ServerHandle, owner: str) -> list[str]:
    """Spellings of '<my results>/../../..' and friends that name the data directory's files or
    another owner's results."""
    mine = results_folder(server, owner)
    theirs = f"{owner_tag('mallory-victim')}/secret.pkl"
    spellings = [
        f"{mine}/../{theirs}",
        f"{mine}/%2E%2E/{theirs}",
        f"{mine}/%2e%2e/{theirs}",
        f"{mine}/%252E%252E/{theirs}",  # double-encoded
        f"{mine}/..%2F{theirs}",  # encoded slash
        f"{mine}/%2E%2E%2F{theirs}",
        f"{mine}\\..\\{theirs}",  # backslashes
        f"{mine}/./../{theirs}",
        f"{mine}//../{theirs}",
    ]
    if not mine.startswith("s3://"):
        spellings += [
            f"{mine}/%2E%2E/%2E%2E/%2E%2E/dev_api_key",
            f"{mine}/%2E%2E/%2E%2E/%2E%2E/launch.db",
            f"{mine}/../../../dev_api_key",
            (server.data_dir / "dev_api_key").as_uri(),  # absolute path outside the folder
            f"file://localhost{server.data_dir / 'launch.db'}",
            f"file://{server.data_dir}/launch.db",
        ]
    return spellings


def test_download_result_only_reads_the_callers_own_results(server: ServerHandle) -> None:
    own = f"{results_folder(server, 'mallory')}/mine.pkl"
    put_object(server, own, b"my own result")
    put_object(server, f"{results_folder(server, 'mallory-victim')}/secret.pkl", b"someone else's result")
    assert download(server, "mallory", own) == b"my own result"  # the control: the route works
    for url in escapes(server, "mallory"):
        with pytest.raises(grpc.RpcError) as err:
            download(server, "mallory", url)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND, url


def test_a_link_inside_the_results_folder_is_judged_by_its_target(server: ServerHandle) -> None:
    if server.backend != "sqlite-local":  # type: ignore[attr-defined]
        pytest.skip("symbolic links exist on local storage only")
    folder = Path(results_folder(server, "linker").removeprefix("file://"))
    folder.mkdir(parents=True, exist_ok=True)
    os.symlink(server.data_dir / "dev_api_key", folder / "key.pkl")
    os.symlink(server.data_dir, folder / "data")
    for url in (f"{folder.as_uri()}/key.pkl", f"{folder.as_uri()}/data/launch.db"):
        with pytest.raises(grpc.RpcError) as err:
            download(server, "linker", url)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND, url


def bundle_spec(location: str) -> bpb.ModelBundleSpec:
    return bpb.ModelBundleSpec(
        name="pointed",
        packaging_type=bpb.PACKAGING_TYPE_CLOUDPICKLE,
        form=bpb.BUNDLE_FORM_PREDICT_FN_OR_CLS,
        python_version="3.11",
        env_params=ENV,
        location=location,
    )


def field_of(err: grpc.RpcError) -> str:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(err)
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            return bad.field_violations[0].field
    return ""


def test_self_hosted_locations_are_checked_in_canonical_form(server: ServerHandle) -> None:
    root = storage_root(server)
    stub = bgrpc.ModelBundleServiceStub(server.channel())
    victim_bundle = f"{root}/bundles/0123456789abcdef"
    put_object(server, victim_bundle, b"another owner's code")
    refused = [*escapes(server, "mallory"), victim_bundle, f"{root}/mine/../bundles/0123456789abcdef"]
    refused.append(f"{root}/mine/%2E%2E/bundles/0123456789abcdef")
    for location in refused:
        with pytest.raises(grpc.RpcError) as err:
            stub.CreateModelBundle(
                bpb.CreateModelBundleRequest(bundle=bundle_spec(location)), metadata=auth(server, "mallory")
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, location
        assert field_of(err.value) == "bundle.location", location
    client = launch.LaunchClient(api_key=server.key_for("mallory"), endpoint=server.address)
    assert client.list_model_bundles() == []  # nothing half-registered


def test_a_location_spelled_oddly_is_stored_canonical(server: ServerHandle) -> None:
    root = storage_root(server)
    put_object(server, f"{root}/self-hosted/odd name.pkl", b"pickled code")
    stub = bgrpc.ModelBundleServiceStub(server.channel())
    response = stub.CreateModelBundle(
        bpb.CreateModelBundleRequest(bundle=bundle_spec(f"{root}/self-hosted/odd%20name.pkl")),
        metadata=auth(server, "tidy"),
    )
    assert response.model_bundle.location == f"{root}/self-hosted/odd%20name.pkl"
    assert response.model_bundle.size_bytes == len(b"pickled code")
