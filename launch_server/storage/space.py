"""A full storage volume is a resource limit, not a server fault: writes that fail with ENOSPC
(no space) or EDQUOT (quota) raise ResourceExhausted, which the API answers RESOURCE_EXHAUSTED
and a replica reports in its FAILURE answer, instead of an opaque INTERNAL error."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

from launch_server.domain.errors import ResourceExhausted

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


@contextmanager
def full_is_exhausted(what: str) -> Iterator[None]:
    """Re-raises a no-space or over-quota OSError from the block as ResourceExhausted."""
    try:
        yield
    except OSError as exc:
        if exc.errno in FULL_ERRNOS:
            raise ResourceExhausted(f"the storage is full: could not write {what} ({exc.strerror})") from exc
        raise
