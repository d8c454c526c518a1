"""The one canonical form of a storage location, on which every check runs.

A location arrives from a client as a URL (`file:///dir/object`, `s3://bucket/key`). It is decoded
exactly once here and normalized, and everything afterwards (the owner's results prefix, the
readable prefixes, the storage root) compares canonical forms only; the bytes are read from the
canonical form too, so what was checked is what is read. Anything that cannot be put in that form
unambiguously is refused rather than guessed at:

- control characters, backslashes, a query or a fragment;
- percent signs left after the one decoding (a double-encoded name such as `%252E%252E`) and
  escapes that do not decode to UTF-8;
- `file://` URLs that name another host or a relative path (dot segments of an absolute path are
  folded lexically here; symbolic links are resolved by the local storage, which knows the disk);
- S3 keys with empty, `.` or `..` segments: S3 keeps them literally while HTTP layers and tools
  may fold them, so the same text could name two objects.

Standard library only: replicas use it as well as the server."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

MAX_LOCATION_CHARS = 4096
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class LocationError(ValueError):
    """The text is not a location this server can put in canonical form; the message says why."""


@dataclass(frozen=True)
class Location:
    """A decoded, normalized location. `path` is an absolute POSIX path for `file` and the object
    key (no leading slash) for `s3`; `bucket` is empty for `file`."""

    scheme: str
    bucket: str
    path: str

    @property
    def url(self) -> str:
        """The location written back as a URL (percent-encoded the way Path.as_uri writes it)."""
        if self.scheme == "file":
            return "file://" + quote(self.path, safe="/")
        return f"s3://{self.bucket}/{quote(self.path, safe='/')}"

    def within(self, folder: Location) -> bool:
        """True when this location lies strictly below `folder` (its own path is not within)."""
        if (self.scheme, self.bucket) != (folder.scheme, folder.bucket):
            return False
        base = folder.path.rstrip("/")
        if self.scheme == "s3" and not base:  # the bucket itself
            return bool(self.path)
        return self.path.startswith(base + "/") and len(self.path) > len(base) + 1

    def child(self, relative: str) -> Location:
        """The location `relative` (slash-separated, no dot segments) below this one."""
        parts = [p for p in relative.split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise LocationError(f"{relative!r} has dot segments")
        joined = "/".join([self.path.rstrip("/"), *parts]) if self.path.rstrip("/") else "/".join(parts)
        return Location(self.scheme, self.bucket, joined)


def _decoded(text: str, what: str) -> str:
    if "%" not in text:
        return text
    try:
        value = unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise LocationError(f"{what} has percent-escapes that are not UTF-8") from None
    if "%" in value:
        raise LocationError(f"{what} is percent-encoded more than once")
    return value


def parse_location(text: str) -> Location:
    """Decodes and normalizes a `file://` or `s3://` URL once; raises LocationError otherwise."""
    if not isinstance(text, str) or not text:
        raise LocationError("the location is empty")
    if len(text) > MAX_LOCATION_CHARS:
        raise LocationError(f"the location is over {MAX_LOCATION_CHARS} characters")
    if _CONTROL.search(text) or "\\" in text:
        raise LocationError("the location has control characters or backslashes")
    parts = urlsplit(text)
    if parts.query or parts.fragment or "?" in text or "#" in text:
        raise LocationError("the location must not have a query or a fragment")
    scheme = parts.scheme.lower()
    path = _decoded(parts.path, "the location's path")
    if _CONTROL.search(path) or "\\" in path:
        raise LocationError("the location's path decodes to control characters or backslashes")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise LocationError("file:// locations must be on this host (file:///path)")
        if not path.startswith("/"):
            raise LocationError("file:// locations must have an absolute path")
        normalized = posixpath.normpath(path)
        if normalized.startswith("//"):  # POSIX keeps a leading double slash; one is enough
            normalized = "/" + normalized.lstrip("/")
        return Location("file", "", normalized)
    if scheme == "s3":
        bucket = parts.netloc
        if not _BUCKET.fullmatch(bucket):
            raise LocationError(f"{bucket!r} is not an S3 bucket name")
        key = path[1:] if path.startswith("/") else path
        segments = key.split("/")
        inner, last = segments[:-1], segments[-1]  # a trailing slash (a folder) leaves last empty
        if any(s in ("", ".", "..") for s in inner) or last in (".", ".."):
            raise LocationError("S3 keys must not have empty, '.' or '..' segments")
        return Location("s3", bucket, key)
    raise LocationError(f"unsupported scheme {parts.scheme!r}: use file:///path or s3://bucket/key")
