"""Per-owner storage prefixes. Stored results live under results/<owner tag>/, so the server can
check that a result URL belongs to the caller without a database lookup."""

from __future__ import annotations

import hashlib

from launch_server.domain.locations import Location


def owner_tag(owner: str) -> str:
    """A stable, non-reversible folder name per owner."""
    return hashlib.sha256(owner.encode()).hexdigest()[:16]


def results_prefix(owner: str) -> str:
    return f"results/{owner_tag(owner)}"


# Folders of the storage root the server writes itself: bundle artifacts, batch chunk files and
# results. A client may name a location in them only when it is one of its own results.
MANAGED_FOLDERS = ("bundles", "batch", "results")


def client_may_read(location: Location, root: Location, own_results: str, extra: tuple[Location, ...]) -> bool:
    """May a client have the server (or a replica) read `location`? All arguments are canonical
    (domain/locations.py). Under the storage root: anything but another owner's managed objects
    (self-hosted artifacts may live there too); elsewhere, only below a configured prefix."""
    if location.within(root):
        relative = location.path[len(root.path.rstrip("/")) :].lstrip("/")
        if relative.split("/", 1)[0] in MANAGED_FOLDERS:
            return location.within(root.child(own_results))
        return True
    return any(location.within(prefix) for prefix in extra)
