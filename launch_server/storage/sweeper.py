"""Reclaims storage that no row owns: sync pickled results, batch chunk files and batch
results past their lifetime, and writes a killed server left half-done (`.part` files, S3
multipart uploads). Bundle artifacts are never swept (their rows own them), nor are async
tasks' stored results (removed with their task rows after LAUNCH_RESULT_RETENTION_S).

Key layout it relies on: sync pickled results under `results/<owner tag>/sync/`, batch results
at `results/<owner tag>/batch-<job>.<ext>`, batch chunk files under `batch/<job>/`.

A pass is bounded: it lists at most `max_listed` objects per folder, resuming next pass where
this one stopped (so a large folder is covered over several passes), and deletes at most
`max_deletes` objects and partial writes in all."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from launch_server.domain.ports import ObjectStorage

log = logging.getLogger(__name__)

SYNC_RESULTS_FOLDER = "sync"
SWEPT_FOLDERS = ("results", "batch")


def sync_result_key(results_prefix: str, name: str) -> str:
    """Where a replica writes a sync endpoint's pickled result, so the sweeper can tell it from
    an async task's (which its task row owns)."""
    return f"{results_prefix}/{SYNC_RESULTS_FOLDER}/{name}"


@dataclass(frozen=True)
class SweepPolicy:
    sync_result_retention_s: float = 86400.0
    batch_artifact_retention_s: float = 7 * 86400.0
    partial_upload_retention_s: float = 86400.0
    max_deletes: int = 1000
    max_listed: int = 10_000

    @classmethod
    def from_settings(cls, settings: Any) -> SweepPolicy:
        """From the server's Settings (duck-typed: storage/ does not import the settings)."""
        return cls(
            sync_result_retention_s=settings.sync_result_retention_s,
            batch_artifact_retention_s=settings.batch_artifact_retention_s,
            partial_upload_retention_s=settings.partial_upload_retention_s,
            max_deletes=settings.storage_sweep_max_deletes,
            max_listed=10 * settings.storage_sweep_max_deletes,
        )

    def retention_of(self, key: str) -> float | None:
        """How long the object at `key` is kept, or None when the sweeper leaves it alone."""
        parts = key.split("/")
        if parts[0] == "batch" and len(parts) >= 3:
            return self.batch_artifact_retention_s
        if parts[0] == "results" and len(parts) == 4 and parts[2] == SYNC_RESULTS_FOLDER:
            return self.sync_result_retention_s
        if parts[0] == "results" and len(parts) == 3 and parts[2].startswith("batch-"):
            return self.batch_artifact_retention_s
        return None


@dataclass
class SweepReport:
    deleted: int = 0
    partials: int = 0


class StorageSweeper:
    def __init__(self, storage: ObjectStorage, policy: SweepPolicy) -> None:
        self._storage = storage
        self._policy = policy
        self._cursors: dict[str, str] = {}

    def sweep(self, now: datetime) -> SweepReport:
        """One bounded pass; `now` is timezone-aware."""
        report = SweepReport()
        for folder in SWEPT_FOLDERS:
            report.deleted += self._sweep_folder(folder, now, self._policy.max_deletes - report.deleted)
        left = self._policy.max_deletes - report.deleted
        if left > 0:
            cutoff = now - timedelta(seconds=self._policy.partial_upload_retention_s)
            report.partials = self._storage.delete_stale_partials(cutoff, left)
        if report.deleted or report.partials:
            log.info("storage sweep: %d expired objects, %d abandoned partial writes", report.deleted, report.partials)
        return report

    def _sweep_folder(self, folder: str, now: datetime, budget: int) -> int:
        deleted = listed = 0
        last = ""
        if budget <= 0:
            return 0
        for obj in self._storage.iter_objects(folder, start_after=self._cursors.get(folder, "")):
            listed += 1
            last = obj.key
            retention = self._policy.retention_of(obj.key)
            if retention is not None and obj.modified < now - timedelta(seconds=retention):
                try:
                    self._storage.delete(obj.location)
                    deleted += 1
                except FileNotFoundError:
                    pass
            if deleted >= budget or listed >= self._policy.max_listed:
                break
        else:
            last = ""  # reached the end: the next pass starts over
        self._cursors[folder] = last
        return deleted
