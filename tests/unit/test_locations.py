"""The canonical form of a location: decoded once, normalized, and refused when ambiguous."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from launch_server.domain.locations import Location, LocationError, parse_location
from launch_server.domain.ownership import client_may_read
from launch_server.storage.local import LocalStorage


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("file:///srv/data/a.pkl", "file:///srv/data/a.pkl"),
        ("file://localhost/srv/data/a.pkl", "file:///srv/data/a.pkl"),
        ("file:///srv/data/%61.pkl", "file:///srv/data/a.pkl"),
        ("file:///srv/data/odd%20name", "file:///srv/data/odd%20name"),
        ("file:///srv/data/x/../../../etc/passwd", "file:///etc/passwd"),  # folded, then judged
        ("file:///srv/data/%2E%2E/%2e%2e/etc", "file:///etc"),
        ("file:///srv//data/./a", "file:///srv/data/a"),
        ("file:////srv/a", "file:///srv/a"),
        ("FILE:///srv/a", "file:///srv/a"),
        ("s3://bucket-1/results/abc/r.pkl", "s3://bucket-1/results/abc/r.pkl"),
        ("s3://bucket-1/a%20b", "s3://bucket-1/a%20b"),
        ("s3://bucket-1/prefix/", "s3://bucket-1/prefix/"),
        ("s3://bucket-1", "s3://bucket-1/"),
    ],
)
def test_canonical_forms(text: str, canonical: str) -> None:
    assert parse_location(text).url == canonical


@pytest.mark.parametrize(
    "text",
    [
        "",
        "/srv/data/a.pkl",  # no scheme
        "http://example.com/a",
        "file://otherhost/srv/a",
        "file:relative/path",
        "file:///srv/%252E%252E/etc",  # double-encoded
        "file:///srv/%2",  # a broken escape stays a '%'
        "file:///srv/%ff%fe",  # not UTF-8
        "file:///srv/a%00b",
        "file:///srv/a\\..\\b",
        "file:///srv/a%5C..%5Cb",  # an encoded backslash
        "file:///srv/a?x=1",
        "file:///srv/a#frag",
        "file:///srv/a\nb",
        "s3://bucket-1/a/../b",
        "s3://bucket-1/a/%2E%2E/b",
        "s3://bucket-1/a//b",
        "s3://bucket-1/a/./b",
        "s3://bucket-1/..",
        "s3://Bad_Bucket/a",
        "s3:///a",
        "file:///" + "a" * 5000,
    ],
)
def test_refused(text: str) -> None:
    with pytest.raises(LocationError):
        parse_location(text)


def test_within_is_strict_and_per_bucket() -> None:
    root = parse_location("file:///srv/storage")
    assert parse_location("file:///srv/storage/a").within(root)
    assert not parse_location("file:///srv/storage").within(root)
    assert not parse_location("file:///srv/storage-other/a").within(root)
    bucket = parse_location("s3://bucket-1")
    assert parse_location("s3://bucket-1/a").within(bucket)
    assert not parse_location("s3://bucket-2/a").within(bucket)
    assert not parse_location("s3://bucket-1/a").within(root)
    assert root.child("results/x").url == "file:///srv/storage/results/x"
    with pytest.raises(LocationError):
        root.child("results/../x")


def test_client_may_read_keeps_managed_folders_per_owner() -> None:
    root = Location("s3", "bucket-1", "prefix")
    extra = (parse_location("file:///models"),)

    def may(text: str) -> bool:
        return client_may_read(parse_location(text), root, "results/mine", extra)

    assert may("s3://bucket-1/prefix/self-hosted/b.pkl")
    assert may("s3://bucket-1/prefix/results/mine/r.pkl")
    assert not may("s3://bucket-1/prefix/results/theirs/r.pkl")
    assert not may("s3://bucket-1/prefix/results/r.pkl")
    assert not may("s3://bucket-1/prefix/bundles/0123")
    assert not may("s3://bucket-1/prefix/batch/j/chunk-000000")
    assert not may("s3://bucket-1/elsewhere")
    assert may("file:///models/m.pkl")
    assert not may("file:///models-not/m.pkl")


def test_local_storage_resolves_links_before_judging(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "storage")
    (tmp_path / "secret").write_text("s")
    os.symlink(tmp_path / "secret", storage.root / "link")
    os.symlink(tmp_path, storage.root / "dir-link")
    assert not storage.contains((storage.root / "link").as_uri())
    assert not storage.contains((storage.root / "dir-link" / "secret").as_uri())
    assert storage.contains((storage.root / "plain").as_uri())
    assert not storage.contains(storage.root_url + "/%2E%2E/secret")
    assert not storage.contains("not a url")
    with pytest.raises(LocationError):
        storage.begin_write("../escape")
