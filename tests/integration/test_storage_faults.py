"""The storage volume full: a 50 MiB tmpfs mounted as the local storage directory (needs root;
skipped otherwise). Uploads and pickled results that do not fit fail clearly
(RESOURCE_EXHAUSTED for an upload; a FAILURE answer saying the storage is full for a pickled
result, whose predict already ran), nothing half-written is left, everything else keeps
answering, and once space is freed the same calls succeed."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import launch
import pytest
from launch.v1 import model_bundle_pb2 as bpb

from tests.integration.test_bundles import ENV, client_for, raw_upload
from tests.integration.test_endpoints import SMALL, wait_status
from tests.server_fixtures import serving_env
from tests.support import ServerHandle, start_server

SIZE_MB = 50


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "volume"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"could not mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def fill(volume: Path, leave_bytes: int) -> Path:
    """Takes all but about `leave_bytes` of the volume with one file."""
    stats = os.statvfs(volume)
    free = stats.f_bavail * stats.f_frsize
    filler = volume / "filler"
    with open(filler, "wb") as f:
        f.truncate(0)
        chunk = b"\0" * (1 << 20)
        remaining = max(0, free - leave_bytes)
        while remaining > 0:
            f.write(chunk[: min(len(chunk), remaining)])
            remaining -= min(len(chunk), remaining)
    return filler


def cloudpickle_spec(name: str) -> bpb.ModelBundleSpec:
    return bpb.ModelBundleSpec(
        name=name,
        packaging_type=bpb.PACKAGING_TYPE_CLOUDPICKLE,
        form=bpb.BUNDLE_FORM_PREDICT_FN_OR_CLS,
        python_version="3.11",
        env_params=ENV,
    )


def test_upload_that_does_not_fit_is_resource_exhausted(small_volume: Path, tmp_path: Path) -> None:
    storage = small_volume / "storage"
    server = start_server(tmp_path / "data", storage_url=storage.as_uri())
    try:
        client = client_for(server, "alice")
        client.create_model_bundle("before", ENV, predict_fn_or_cls=lambda x: x, requirements=[])
        before = files(storage)
        data = os.urandom((SIZE_MB + 10) << 20)
        chunks = [data[i : i + (1 << 20)] for i in range(0, len(data), 1 << 20)]
        with pytest.raises(grpc.RpcError) as err:
            raw_upload(server, "alice", cloudpickle_spec("too-big"), data, chunks=chunks)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
        assert "storage is full" in err.value.details()
        assert files(storage) == before  # no .part left
        with pytest.raises(launch.NotFoundError):
            client.get_model_bundle("too-big")
        # everything else keeps answering
        assert [b.name for b in client.list_model_bundles()] == ["before"]
        assert client.get_model_bundle("before").name == "before"
        # a volume filled by something else: a small upload cannot be written either
        filler = fill(small_volume, 256 << 10)
        small = os.urandom(2 << 20)
        with pytest.raises(grpc.RpcError) as err:
            raw_upload(server, "alice", cloudpickle_spec("small"), small)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
        assert [p for p in files(storage) if p.endswith(".part")] == []
        filler.unlink()
        raw_upload(server, "alice", cloudpickle_spec("small"), small)
        assert client.get_model_bundle("small").name == "small"
        assert len(files(storage)) == len(before) + 1
    finally:
        server.stop()


@pytest.mark.usefixtures("ray_cluster")
def test_pickled_result_that_does_not_fit_is_a_clear_failure(
    small_volume: Path, tmp_path: Path, ray_cluster: str
) -> None:
    storage = small_volume / "storage"
    prefix = f"full{os.getpid() % 10000}"
    server: ServerHandle = start_server(
        tmp_path / "data",
        storage_url=storage.as_uri(),
        extra_env={**serving_env(ray_cluster, prefix), "LAUNCH_DIRECT_ROUTE": "0"},
    )
    try:
        client = client_for(server, "alice")

        def blob(n: int) -> str:
            return "r" * n

        bundle = client.create_model_bundle("blob", ENV, predict_fn_or_cls=blob, requirements=[])
        ep = client.create_model_endpoint("blob-ep", bundle, **SMALL)
        wait_status(ep, "READY")
        pickled = launch.EndpointRequest(args={"n": 4 << 20}, return_pickled=True)
        assert ep.predict(pickled).status == "SUCCESS"
        before = files(storage)
        filler = fill(small_volume, 1 << 20)
        response = ep.predict(pickled)
        assert response.status == "FAILURE"
        assert "storage is full" in (response.traceback or ""), response.traceback
        assert "Traceback" not in (response.traceback or "")
        assert files(storage) == before  # no result object, no .part left
        # everything else keeps answering: a JSON result, reads of the control plane
        small = ep.predict(launch.EndpointRequest(args={"n": 3}, return_pickled=False))
        assert small.status == "SUCCESS"
        assert client.get_model_endpoint("blob-ep").name == "blob-ep"
        filler.unlink()
        again = ep.predict(pickled)
        assert again.status == "SUCCESS" and again.result_url
        client.delete_model_endpoint(ep)
    finally:
        server.stop()


def test_replica_reports_a_full_volume_in_its_answer(small_volume: Path, tmp_path: Path) -> None:
    """The replica runtime alone (no Ray), the way a replica answers: a sync endpoint's pickled
    result lands under results/<owner>/sync/; on a full volume the answer is a FAILURE naming
    the full storage, with no traceback of ours and no .part left."""
    from launch.packaging import FORM_PREDICT_FN_OR_CLS, pickle_bundle

    from launch_server.domain.requests import InferenceRequest
    from launch_server.replica.bundle_runtime import BundleDescriptor, BundleRuntime, RuntimeConfig
    from launch_server.storage.local import LocalStorage

    storage = LocalStorage(small_volume / "storage")
    data, metadata = pickle_bundle(FORM_PREDICT_FN_OR_CLS, lambda n: "r" * n, None, None, None, None)
    descriptor = BundleDescriptor(
        bundle_id="b1",
        name="blob",
        packaging_type="CLOUDPICKLE",
        form=FORM_PREDICT_FN_OR_CLS,
        location=storage.put_bytes("bundles/b1", data),
        metadata=metadata,
        python_version="3.11",
    )
    config = RuntimeConfig(
        storage_url=storage.root_url, work_dir=str(tmp_path / "work"), results_prefix="results/t", sync_results=True
    )
    runtime = BundleRuntime(descriptor, config)
    pickled = InferenceRequest(args_json='{"n": 4194304}', return_pickled=True)
    ok = runtime.predict(pickled)
    assert ok.state == "SUCCESS" and "/results/t/sync/" in ok.result_url
    before = files(storage.root)
    filler = fill(small_volume, 1 << 20)
    full = runtime.predict(pickled)
    assert full.state == "FAILURE"
    assert "storage is full" in full.traceback and "Traceback" not in full.traceback
    assert files(storage.root) == before
    assert runtime.predict(InferenceRequest(args_json='{"n": 3}', return_pickled=False)).state == "SUCCESS"
    filler.unlink()
    assert runtime.predict(pickled).state == "SUCCESS"
