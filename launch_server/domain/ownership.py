"""Per-owner storage prefixes. Stored results live under results/<owner tag>/, so the server can
check that a result URL belongs to the caller without a database lookup."""

from __future__ import annotations

import hashlib


def owner_tag(owner: str) -> str:
    """A stable, non-reversible folder name per owner."""
    return hashlib.sha256(owner.encode()).hexdigest()[:16]


def results_prefix(owner: str) -> str:
    return f"results/{owner_tag(owner)}"
