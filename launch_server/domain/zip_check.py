"""Checks a zip bundle's entry names before it is registered: no entry may escape the folder it
is unpacked into (absolute paths, '..' segments, drive letters), and the module paths the bundle
names must point into folders the zip has. Replicas check again when they unpack."""

from __future__ import annotations

import posixpath
import zipfile
from typing import IO

from .errors import InvalidArgument


def unsafe_entry(name: str) -> bool:
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":"):
        return True
    return ".." in posixpath.normpath(normalized).split("/") or ".." in normalized.split("/")


def check_zip(fileobj: IO[bytes], module_paths: list[str]) -> None:
    try:
        with zipfile.ZipFile(fileobj) as zf:
            names = zf.namelist()
    except zipfile.BadZipFile as exc:
        raise InvalidArgument("chunk", f"artifact is not a valid zip file: {exc}") from None
    for name in names:
        if unsafe_entry(name):
            raise InvalidArgument("chunk", f"zip entry {name!r} would escape its folder")
    tops = {n.replace("\\", "/").split("/", 1)[0] for n in names}
    for path in module_paths:
        top = path.split(".", 1)[0]
        if top not in tops:
            raise InvalidArgument(
                "header.bundle.metadata",
                f"module path {path!r} starts with {top!r}, which is not a folder in the zip (folders: {sorted(tops)})",
            )
