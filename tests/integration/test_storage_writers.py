"""Object-storage writers against the real backends (a local directory, moto's S3 server on
loopback): abort() waits for a write or commit in flight and leaves nothing behind, whatever
point the write had reached. This is what a cancelled bundle upload relies on: its last write
or its commit runs on in a thread while the server aborts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from launch_server.storage.local import LocalStorage
from launch_server.storage.s3 import PART_SIZE, S3Storage
from tests.support import S3Server


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalStorage | S3Storage]:
    if request.param == "local":
        yield LocalStorage(tmp_path / "objects")
    else:
        s3: S3Server = request.getfixturevalue("s3_server")
        yield S3Storage(f"s3://{s3.bucket}/writers-{tmp_path.name}", endpoint_url=s3.endpoint_url)


def leftovers(storage: LocalStorage | S3Storage) -> list[str]:
    """Every object and unfinished multipart upload under the storage's root."""
    if isinstance(storage, LocalStorage):
        return sorted(str(p.relative_to(storage.root)) for p in storage.root.rglob("*") if p.is_file())
    client = storage._client  # noqa: SLF001 - the test looks at the bucket itself
    objects = client.list_objects_v2(Bucket=storage.bucket, Prefix=storage.prefix).get("Contents", [])
    uploads = client.list_multipart_uploads(Bucket=storage.bucket, Prefix=storage.prefix).get("Uploads", [])
    return sorted([o["Key"] for o in objects] + [f"multipart:{u['Key']}" for u in uploads])


def test_abort_after_a_commit_got_through_discards_the_object(storage) -> None:  # type: ignore[no-untyped-def]
    writer = storage.begin_write("bundles/committed")
    writer.write(b"x" * (PART_SIZE + 1))  # past one part: S3 takes the multipart path
    location = writer.commit()
    assert storage.read_bytes(location) == b"x" * (PART_SIZE + 1)
    writer.abort()  # the upload's caller was cancelled while the commit ran
    assert leftovers(storage) == []


def test_abort_waits_for_a_write_in_flight_and_later_writes_fail(storage) -> None:  # type: ignore[no-untyped-def]
    writer = storage.begin_write("bundles/in-flight")
    first_part = b"y" * PART_SIZE
    write = threading.Thread(target=writer.write, args=(first_part,))
    write.start()  # the cancelled RPC's last write, still running in its thread
    writer.abort()
    write.join(30)
    with pytest.raises((RuntimeError, ValueError)):
        writer.write(b"late")
    assert leftovers(storage) == []
