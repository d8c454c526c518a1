"""Zip bombs made in the test: too many entries, one highly compressible big entry, too much in
total. The upload check (domain/zip_check.py) answers INVALID_ARGUMENT; the replica's unpack
(replica/bundle_runtime.py extract_zip) refuses the same archives with a load error and leaves nothing."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from launch_server.domain.errors import InvalidArgument
from launch_server.domain.zip_check import DEFAULT_LIMITS, ZipLimits, check_zip
from launch_server.replica.bundle_runtime import BundleLoadError, extract_zip

MODULES = ["pkg.mod.f", "pkg.mod.g"]


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in entries.items():
            zf.writestr(name, content)
    return buffer.getvalue()


def many_entries() -> bytes:
    return _zip(
        {"pkg/mod.py": b"def f(m): return m\n", **{f"pkg/e{i}": b"" for i in range(DEFAULT_LIMITS.max_entries)}}
    )


def one_big_entry() -> bytes:
    return _zip({"pkg/mod.py": b"def f(m): return m\n", "pkg/zeros.bin": bytes(64 << 20)})


def ok_zip() -> bytes:
    return _zip({"pkg/mod.py": b"def f(m): return m\ndef g(): return 1\n", "pkg/data.bin": bytes(4096)})


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    return {"entries": many_entries(), "ratio": one_big_entry()}


def test_upload_check_refuses_too_many_entries(bombs: dict[str, bytes]) -> None:
    with pytest.raises(InvalidArgument) as err:
        check_zip(io.BytesIO(bombs["entries"]), MODULES)
    assert err.value.field == "chunk"
    assert f"over the limit of {DEFAULT_LIMITS.max_entries}" in str(err.value)


def test_upload_check_refuses_a_highly_compressed_entry(bombs: dict[str, bytes]) -> None:
    assert len(bombs["ratio"]) < 1 << 20  # 64 MiB of zeros in well under 1 MiB
    with pytest.raises(InvalidArgument) as err:
        check_zip(io.BytesIO(bombs["ratio"]), MODULES)
    assert "pkg/zeros.bin" in str(err.value) and "compression" in str(err.value)


def test_upload_check_refuses_too_much_in_total() -> None:
    data = _zip({"pkg/mod.py": b"x = 1\n", **{f"pkg/{i}.bin": bytes(1000) for i in range(5)}})
    limits = ZipLimits(max_unpacked_bytes=4000)
    with pytest.raises(InvalidArgument) as err:
        check_zip(io.BytesIO(data), MODULES, limits)
    assert "more than 4000 bytes" in str(err.value)


def test_upload_check_accepts_an_ordinary_zip() -> None:
    check_zip(io.BytesIO(ok_zip()), MODULES)


@pytest.mark.parametrize("kind", ["entries", "ratio"])
def test_replica_refuses_a_bomb_and_leaves_nothing(bombs: dict[str, bytes], kind: str, tmp_path: Path) -> None:
    with pytest.raises(BundleLoadError) as err:
        extract_zip(bombs[kind], tmp_path / "bundle")
    assert "not unpacked" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_replica_counts_written_bytes_against_the_total(tmp_path: Path) -> None:
    data = _zip({"pkg/mod.py": b"x = 1\n", **{f"pkg/{i}.bin": bytes(1000) for i in range(5)}})
    with pytest.raises(BundleLoadError) as err:
        extract_zip(data, tmp_path / "bundle", ZipLimits(max_unpacked_bytes=4000))
    assert "more than 4000 bytes" in str(err.value)
    assert [p for p in tmp_path.iterdir() if p.name != "bundle"] == []
    assert not (tmp_path / "bundle").exists()


def test_replica_unpacks_an_ordinary_zip(tmp_path: Path) -> None:
    root = extract_zip(ok_zip(), tmp_path / "bundle")
    assert (root / "pkg" / "data.bin").stat().st_size == 4096
