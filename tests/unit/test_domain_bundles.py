"""Domain rules for bundles and keys, with in-memory fakes of the repository and storage."""

from __future__ import annotations

import asyncio
import hashlib
import io
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC

import pytest

from launch_server.domain.bundles import BundleService, UploadHeader
from launch_server.domain.entities import ApiKeyRecord, Bundle, BundleForm, BundleSpec, PackagingType, Page
from launch_server.domain.errors import (
    AlreadyExists,
    ChecksumMismatch,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unauthenticated,
)
from launch_server.domain.keys import ApiKeyService
from launch_server.domain.locations import Location, parse_location
from launch_server.domain.ownership import owner_tag
from launch_server.domain.validation import validate_bundle_spec


class FakeWriter:
    def __init__(self, storage: FakeStorage, key: str) -> None:
        self.storage, self.key, self.buffer, self.aborted = storage, key, bytearray(), False

    def write(self, data: bytes) -> None:
        self.buffer += data

    def commit(self) -> str:
        location = f"s3://mem-bucket/{self.key}"
        self.storage.objects[location] = bytes(self.buffer)
        return location

    def abort(self) -> None:
        self.aborted = True


class FakeStorage:
    root_url = "s3://mem-bucket"
    root_location = parse_location("s3://mem-bucket")

    def canonical(self, location: str) -> Location:
        return parse_location(location)

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def begin_write(self, key: str) -> FakeWriter:
        return FakeWriter(self, key)

    def size_of(self, location: str) -> int:
        if location not in self.objects:
            raise FileNotFoundError(location)
        return len(self.objects[location])

    def read_chunks(self, location: str, chunk_size: int = 1 << 20):  # type: ignore[no-untyped-def]
        yield self.objects[location]

    def delete(self, location: str) -> None:
        self.objects.pop(location, None)

    def contains(self, location: str) -> bool:
        return self.canonical(location).within(self.root_location)


class FakeBundleRepo:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Bundle] = {}

    def add(self, bundle: Bundle) -> Bundle:
        if (bundle.owner, bundle.name) in self.rows:
            raise AlreadyExists("model bundle", bundle.name)
        self.rows[(bundle.owner, bundle.name)] = bundle
        return bundle

    def get(self, owner: str, name: str) -> Bundle | None:
        return self.rows.get((owner, name))

    def get_by_request_id(self, owner: str, request_id: str) -> Bundle | None:
        return next((b for b in self.rows.values() if b.owner == owner and b.request_id == request_id), None)

    def list(self, owner: str, page_size: int, page_token: str) -> Page:
        return Page(items=[b for b in self.rows.values() if b.owner == owner][:page_size])

    def delete(self, owner: str, name: str) -> Bundle:
        if (owner, name) not in self.rows:
            raise NotFound("model bundle", name)
        return self.rows.pop((owner, name))


def spec(name: str = "b", **kw) -> BundleSpec:  # type: ignore[no-untyped-def]
    base = dict(
        name=name,
        packaging_type=PackagingType.CLOUDPICKLE,
        form=BundleForm.PREDICT_FN_OR_CLS,
        env_params={"framework_type": "pytorch", "pytorch_image_tag": "2.1.0"},
        python_version="3.11",
    )
    base.update(kw)
    return BundleSpec(**base)


async def stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def header_for(data: bytes, s: BundleSpec | None = None, **kw) -> UploadHeader:  # type: ignore[no-untyped-def]
    return UploadHeader(
        spec=s or spec(), size_bytes=kw.get("size", len(data)), sha256=kw.get("sha", hashlib.sha256(data).hexdigest())
    )


def make_service(limit: int = 1 << 20) -> tuple[BundleService, FakeBundleRepo, FakeStorage]:
    repo, storage = FakeBundleRepo(), FakeStorage()
    return BundleService(repo, storage, max_upload_bytes=limit), repo, storage


def test_upload_registers_only_after_checks() -> None:
    service, repo, storage = make_service()
    bundle = asyncio.run(service.upload("o", header_for(b"abcdef"), stream(b"abc", b"def")))
    assert storage.objects[bundle.location] == b"abcdef"
    assert repo.get("o", "b") == bundle


@pytest.mark.parametrize(
    ("chunks", "kw", "field"),
    [
        ((b"abc",), {"size": 6}, "header.size_bytes"),
        ((b"abcdef", b"g"), {"size": 6}, "chunk"),
        ((b"abcdef",), {"sha": "0" * 64}, "header.sha256"),
    ],
)
def test_mismatched_upload_aborts_and_registers_nothing(chunks, kw, field) -> None:  # type: ignore[no-untyped-def]
    service, repo, storage = make_service()
    with pytest.raises(ChecksumMismatch) as err:
        asyncio.run(service.upload("o", header_for(b"abcdef", **kw), stream(*chunks)))
    assert err.value.field == field
    assert not repo.rows and not storage.objects


def test_upload_limit_is_resource_exhausted_before_any_byte() -> None:
    service, _, storage = make_service(limit=4)
    with pytest.raises(ResourceExhausted, match="upload limit"):
        asyncio.run(service.upload("o", header_for(b"abcdef"), stream(b"abcdef")))
    assert not storage.objects


def test_duplicate_name_refused_before_upload() -> None:
    service, _, storage = make_service()
    asyncio.run(service.upload("o", header_for(b"x"), stream(b"x")))
    with pytest.raises(AlreadyExists):
        asyncio.run(service.upload("o", header_for(b"y"), stream(b"y")))
    assert len(storage.objects) == 1


def test_zip_escape_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("pkg/m.py", "")
        zf.writestr("/etc/passwd", "")
    data = buffer.getvalue()
    zspec = spec(
        packaging_type=PackagingType.ZIP,
        form=BundleForm.UNSPECIFIED,
        metadata={"load_predict_fn_module_path": "pkg.m.f", "load_model_fn_module_path": "pkg.m.g"},
    )
    service, repo, storage = make_service()
    with pytest.raises(InvalidArgument, match="escape"):
        asyncio.run(service.upload("o", header_for(data, zspec), stream(data)))
    assert not repo.rows and not storage.objects


def test_self_hosted_location_must_be_readable() -> None:
    service, _, storage = make_service()
    with pytest.raises(InvalidArgument) as err:
        asyncio.run(service.create_from_location("o", spec(location="file:///etc/passwd")))
    assert err.value.field == "bundle.location"
    with pytest.raises(InvalidArgument, match="no object"):
        asyncio.run(service.create_from_location("o", spec(location="s3://mem-bucket/mine/missing")))
    storage.objects["s3://mem-bucket/mine/there"] = b"123"
    bundle = asyncio.run(service.create_from_location("o", spec(location="s3://mem-bucket/mine/%74here")))
    assert bundle.size_bytes == 3 and not bundle.managed_artifact
    assert bundle.location == "s3://mem-bucket/mine/there"  # stored as checked: canonical


@pytest.mark.parametrize(
    "location",
    [
        "s3://mem-bucket/bundles/another-owners-bundle",  # server-managed folders
        "s3://mem-bucket/batch/job/chunk-000001",
        f"s3://mem-bucket/results/{owner_tag('someone-else')}/r.pkl",
        "s3://mem-bucket/mine/../bundles/x",  # S3 keys keep dot segments literally: refused
        "s3://mem-bucket/mine//x",
        "s3://mem-bucket/mine/%2E%2E/bundles/x",
        "s3://mem-bucket/mine/%252E%252E/x",  # double-encoded
        "s3://mem-bucket/mine\\..\\x",
        "s3://other-bucket/x",
        "file:///etc/passwd",
    ],
)
def test_self_hosted_location_is_checked_in_canonical_form(location: str) -> None:
    service, repo, storage = make_service()
    storage.objects[location] = b"123"
    with pytest.raises(InvalidArgument) as err:
        asyncio.run(service.create_from_location("o", spec(location=location)))
    assert err.value.field == "bundle.location"
    assert not repo.rows


def test_own_results_are_readable() -> None:
    service, _, storage = make_service()
    own = f"s3://mem-bucket/results/{owner_tag('o')}/r.pkl"
    storage.objects[own] = b"1"
    assert asyncio.run(service.create_from_location("o", spec(location=own))).location == own


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"form": BundleForm.UNSPECIFIED}, "bundle.form"),
        ({"python_version": "three"}, "bundle.python_version"),
        ({"requirements": ("--index-url=http://evil",)}, "bundle.requirements[0]"),
        ({"app_config_json": "[1, 2]"}, "bundle.app_config_json"),
        (
            {"packaging_type": PackagingType.ZIP, "form": BundleForm.UNSPECIFIED},
            "bundle.metadata.load_predict_fn_module_path",
        ),
    ],
)
def test_spec_validation_names_the_field(kw, field) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgument) as err:
        validate_bundle_spec(spec(**kw))
    assert err.value.field == field


class FakeKeyRepo:
    def __init__(self) -> None:
        self.rows: dict[str, ApiKeyRecord] = {}
        self.gets = 0

    def add(self, record: ApiKeyRecord) -> None:
        self.rows[record.key_id] = record

    def get(self, key_id: str) -> ApiKeyRecord | None:
        self.gets += 1
        return self.rows.get(key_id)

    def list(self, owner: str | None = None) -> list[ApiKeyRecord]:
        return [r for r in self.rows.values() if owner in (None, r.owner)]

    def revoke(self, key_id: str) -> bool:
        from dataclasses import replace
        from datetime import datetime

        self.rows[key_id] = replace(self.rows[key_id], revoked_at=datetime.now(UTC))
        return True


def test_keys_hash_only_cache_and_revoke() -> None:
    repo = FakeKeyRepo()
    keys = ApiKeyService(repo, cache_seconds=60)
    record, key = keys.create("alice")
    assert key.split("_")[2] not in record.secret_hash
    assert keys.cached_owner(key) is None  # not checked yet: the server checks it in a thread
    assert keys.authenticate(key) == "alice"
    keys.authenticate(key)
    assert repo.gets == 1  # the second check came from the cache
    assert keys.cached_owner(key) == "alice"
    with pytest.raises(Unauthenticated):
        keys.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B"))
    keys.revoke(record.key_id)
    assert keys.cached_owner(key) is None
    with pytest.raises(Unauthenticated, match="revoked"):
        keys.authenticate(key)
