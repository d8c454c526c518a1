"""The storage sweeper (storage/sweeper.py) on real storage: a local directory and a moto S3
server on loopback. Objects no row owns appear, survive while young, and the count falls back to
zero past their lifetime; bundles and async task results are never swept; abandoned `.part` files
and S3 multipart uploads older than the cutoff are removed, live ones are not. Time is passed to
the sweeper as `now`, so nothing waits for a retention to run out."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import launch
import pytest

from launch_server.domain.ownership import owner_tag, results_prefix
from launch_server.storage.local import LocalStorage
from launch_server.storage.s3 import S3Storage
from launch_server.storage.sweeper import StorageSweeper, SweepPolicy, sync_result_key
from tests.integration.test_endpoints import ENV, SMALL, client_for, make_echo, wait_status
from tests.server_fixtures import serving_env
from tests.support import S3Server, start_server

POLICY = SweepPolicy(sync_result_retention_s=60, batch_artifact_retention_s=600, partial_upload_retention_s=60)
TAG = results_prefix("alice")
SWEPT = [
    sync_result_key(TAG, "a.pkl"),
    sync_result_key(TAG, "b.pkl"),
    f"{TAG}/batch-job1.json",
    "batch/job1/chunk-000000",
    "batch/job1/chunk-000001",
]
KEPT = [f"{TAG}/task-result.pkl", "bundles/bundle1", "self-hosted/model.zip"]


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalStorage | S3Storage]:
    if request.param == "local":
        yield LocalStorage(tmp_path / "storage")
    else:
        s3: S3Server = request.getfixturevalue("s3_server")
        yield S3Storage(f"s3://{s3.bucket}/sweep-{uuid.uuid4().hex[:8]}", endpoint_url=s3.endpoint_url)


def keys(storage: LocalStorage | S3Storage) -> list[str]:
    return sorted(
        o.key for folder in ("results", "batch", "bundles", "self-hosted") for o in storage.iter_objects(folder)
    )


def partials(storage: LocalStorage | S3Storage) -> int:
    if isinstance(storage, LocalStorage):
        return sum(1 for p in storage.root.rglob("*.part"))
    uploads = storage._client.list_multipart_uploads(Bucket=storage.bucket, Prefix=storage.prefix + "/")
    return len(uploads.get("Uploads", []))


def test_expired_objects_are_swept_and_owned_ones_kept(storage: LocalStorage | S3Storage) -> None:
    for key in SWEPT + KEPT:
        storage.put_bytes(key, b"x")
    sweeper = StorageSweeper(storage, POLICY)
    now = datetime.now(UTC)
    assert sweeper.sweep(now).deleted == 0
    assert keys(storage) == sorted(SWEPT + KEPT)
    # past the sync lifetime, not yet the batch one
    sweeper.sweep(now + timedelta(seconds=120))
    assert keys(storage) == sorted(set(SWEPT + KEPT) - {sync_result_key(TAG, "a.pkl"), sync_result_key(TAG, "b.pkl")})
    sweeper.sweep(now + timedelta(seconds=1200))
    assert keys(storage) == sorted(KEPT)


def test_a_pass_is_bounded_and_the_next_resumes(storage: LocalStorage | S3Storage) -> None:
    names = [sync_result_key(TAG, f"{i:02d}.pkl") for i in range(7)]
    for key in names:
        storage.put_bytes(key, b"x")
    sweeper = StorageSweeper(storage, SweepPolicy(sync_result_retention_s=1, max_deletes=3, max_listed=3))
    later = datetime.now(UTC) + timedelta(seconds=10)
    counts = []
    while keys(storage):
        counts.append(sweeper.sweep(later).deleted)
        assert len(counts) < 10
    assert max(counts) <= 3 and sum(counts) == 7


def test_abandoned_partial_writes_are_removed_and_live_ones_kept(storage: LocalStorage | S3Storage) -> None:
    if isinstance(storage, LocalStorage):
        live = storage.begin_write("bundles/live")
        live.write(b"some bytes")
        dead = storage.begin_write("bundles/dead")
        dead.write(b"left by a server killed mid-upload")
        old = (datetime.now(UTC) - timedelta(hours=1)).timestamp()
        dead_part = next(p for p in storage.root.rglob("*.part") if ".dead." in p.name)
        os.utime(dead_part, (old, old))
        sweeper = StorageSweeper(storage, POLICY)
        assert sweeper.sweep(datetime.now(UTC)).partials == 1
        assert partials(storage) == 1
        live.write(b"more")
        assert live.commit().endswith("/bundles/live")
        assert keys(storage) == ["bundles/live"]
        return
    client, bucket, key = storage._client, storage.bucket, f"{storage.prefix}/bundles/dead"
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    client.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"x" * 100)
    assert partials(storage) == 1
    sweeper = StorageSweeper(storage, POLICY)
    now = datetime.now(UTC)
    assert sweeper.sweep(now).partials == 0  # a part written just now: may still be running
    assert partials(storage) == 1
    assert sweeper.sweep(now + timedelta(seconds=120)).partials == 1
    assert partials(storage) == 0


def test_the_server_sweeps_sync_pickled_results(tmp_path: Path, ray_cluster: str) -> None:
    """End to end: a sync endpoint's pickled result lands under results/<owner>/sync/ and the
    server's maintenance loop removes it once its (here 1 s) lifetime is over."""
    env = {
        **serving_env(ray_cluster, f"sw{os.getpid() % 10000}"),
        "LAUNCH_SYNC_RESULT_RETENTION_S": "1",
        "LAUNCH_STORAGE_SWEEP_INTERVAL_S": "1",
    }
    server = start_server(tmp_path / "data", extra_env=env)
    try:
        client = client_for(server)
        bundle = client.create_model_bundle("sweep", ENV, predict_fn_or_cls=make_echo(), requirements=[])
        ep = client.create_model_endpoint("sweep-ep", bundle, **SMALL)
        wait_status(ep, "READY")
        response = ep.predict(launch.EndpointRequest(args={"x": 1}, return_pickled=True))
        assert response.status == "SUCCESS" and f"/{owner_tag('alice')}/sync/" in response.result_url
        stored = Path(response.result_url.removeprefix("file://"))
        deadline = time.monotonic() + 60
        while stored.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not stored.exists()
        client.delete_model_endpoint(ep)
    finally:
        server.stop()
