"""Checks a zip bundle before it is registered: no entry may escape the folder it is unpacked
into (absolute paths, '..' segments, drive letters), the archive must stay within the unpack
limits (entry count, total unpacked size, per-entry compression ratio) so a small upload cannot
fill a replica's disk, and the module paths the bundle names must point into folders the zip
has. Replicas check again when they unpack (replica/bundle_runtime.py), because self-hosted zips never
pass through the upload."""

from __future__ import annotations

import posixpath
import zipfile
from dataclasses import dataclass
from typing import IO

from launch_server.domain.errors import InvalidArgument


@dataclass(frozen=True)
class ZipLimits:
    """What an unpacked bundle may take. The ratio applies only to entries of at least
    `ratio_floor_bytes` unpacked: small files of repeated bytes compress very well and are
    harmless, a multi-megabyte entry a thousand times its compressed size is a zip bomb."""

    max_entries: int = 100_000
    max_unpacked_bytes: int = 32 << 30
    max_ratio: int = 200
    ratio_floor_bytes: int = 1 << 20


DEFAULT_LIMITS = ZipLimits()


def unsafe_entry(name: str) -> bool:
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":"):
        return True
    return ".." in posixpath.normpath(normalized).split("/") or ".." in normalized.split("/")


def limit_violation(infos: list[zipfile.ZipInfo], limits: ZipLimits = DEFAULT_LIMITS) -> str | None:
    """Why the archive's central directory exceeds the limits, or None. The sizes are the ones
    the archive declares; the replica also counts the bytes it actually writes."""
    if len(infos) > limits.max_entries:
        return f"has {len(infos)} entries, over the limit of {limits.max_entries}"
    total = 0
    for info in infos:
        total += info.file_size
        if total > limits.max_unpacked_bytes:
            return f"unpacks to more than {limits.max_unpacked_bytes} bytes, over the limit"
        if info.file_size >= limits.ratio_floor_bytes and info.file_size > limits.max_ratio * max(
            info.compress_size, 1
        ):
            return (
                f"entry {info.filename!r} unpacks to {info.file_size} bytes from {info.compress_size} "
                f"(over {limits.max_ratio}x compression)"
            )
    return None


def check_zip(fileobj: IO[bytes], module_paths: list[str], limits: ZipLimits = DEFAULT_LIMITS) -> None:
    try:
        with zipfile.ZipFile(fileobj) as zf:
            infos = zf.infolist()
    except zipfile.BadZipFile as exc:
        raise InvalidArgument("chunk", f"artifact is not a valid zip file: {exc}") from None
    names = [info.filename for info in infos]
    for name in names:
        if unsafe_entry(name):
            raise InvalidArgument("chunk", f"zip entry {name!r} would escape its folder")
    why = limit_violation(infos, limits)
    if why:
        raise InvalidArgument("chunk", f"the zip {why}")
    tops = {n.replace("\\", "/").split("/", 1)[0] for n in names}
    for path in module_paths:
        top = path.split(".", 1)[0]
        if top not in tops:
            raise InvalidArgument(
                "header.bundle.metadata",
                f"module path {path!r} starts with {top!r}, which is not a folder in the zip (folders: {sorted(tops)})",
            )
