"""SQL repository for batch jobs."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from launch_server.domain.batch_jobs import FINISHED, BatchJob, BatchOptions, BatchStatus
from launch_server.domain.entities import Page
from launch_server.store.db import writer
from launch_server.store.paging import newest_first, page
from launch_server.store.repositories import as_utc
from launch_server.store.tables import BatchJobRow


def _to_job(row: BatchJobRow) -> BatchJob:
    return BatchJob(
        job_id=row.job_id,
        owner=row.owner,
        bundle_name=row.bundle_name,
        endpoint_id=row.endpoint_id,
        status=BatchStatus(row.status),
        status_reason=row.status_reason,
        serialization_format=row.serialization_format,
        options=BatchOptions(**row.options),
        labels=dict(row.labels),
        total_count=row.total_count,
        succeeded_count=row.succeeded_count,
        failed_count=row.failed_count,
        chunk_size=row.chunk_size,
        result_url=row.result_url,
        created_at=as_utc(row.created_at),
        started_at=as_utc(row.started_at) if row.started_at else None,
        finished_at=as_utc(row.finished_at) if row.finished_at else None,
        request_id=row.request_id,
    )


class SqlBatchJobRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    def add(self, job: BatchJob) -> BatchJob:
        with Session(self._writer) as session:
            session.add(
                BatchJobRow(
                    job_id=job.job_id,
                    owner=job.owner,
                    bundle_name=job.bundle_name,
                    endpoint_id=job.endpoint_id,
                    status=job.status.value,
                    status_reason=job.status_reason,
                    serialization_format=job.serialization_format,
                    options=dataclasses.asdict(job.options),
                    labels=dict(job.labels),
                    total_count=job.total_count,
                    chunk_size=job.chunk_size,
                    request_id=job.request_id,
                    created_at=job.created_at,
                )
            )
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                existing = self.get_by_request_id(job.owner, job.request_id or "")
                if existing is None:
                    raise
                return existing
        return job

    def get(self, owner: str, job_id: str) -> BatchJob | None:
        with Session(self._engine) as session:
            row = session.exec(
                select(BatchJobRow).where(BatchJobRow.owner == owner, BatchJobRow.job_id == job_id)
            ).first()
            return _to_job(row) if row else None

    def get_by_request_id(self, owner: str, request_id: str) -> BatchJob | None:
        with Session(self._engine) as session:
            row = session.exec(
                select(BatchJobRow).where(BatchJobRow.owner == owner, BatchJobRow.request_id == request_id)
            ).first()
            return _to_job(row) if row else None

    def list(self, owner: str, page_size: int, page_token: str) -> Page:
        query = newest_first(
            select(BatchJobRow).where(BatchJobRow.owner == owner),
            BatchJobRow.created_at,
            BatchJobRow.job_id,
            page_token,
            page_size,
        )
        with Session(self._engine) as session:
            items = [_to_job(r) for r in session.exec(query)]
        return page(items, page_size, lambda j: (j.created_at, j.job_id))

    def unfinished(self) -> list[BatchJob]:
        with Session(self._engine) as session:
            rows = session.exec(select(BatchJobRow).where(BatchJobRow.status.not_in([s.value for s in FINISHED]))).all()
            return [_to_job(r) for r in rows]

    def recently_finished_with_endpoint(self) -> list[BatchJob]:
        """Finished jobs whose temporary endpoint may still need removing."""
        with Session(self._engine) as session:
            rows = session.exec(
                select(BatchJobRow).where(
                    BatchJobRow.status.in_([s.value for s in FINISHED]), BatchJobRow.endpoint_id != ""
                )
            ).all()
            return [_to_job(r) for r in rows]

    def update(self, job_id: str, **values: object) -> None:
        with Session(self._writer) as session:
            session.exec(update(BatchJobRow).where(BatchJobRow.job_id == job_id).values(**values))
            session.commit()

    def finish(self, job_id: str, status: BatchStatus, reason: str, when: datetime, **values: object) -> bool:
        """Moves an unfinished job to a final status; False when it was already final (cancelled)."""
        with Session(self._writer) as session:
            result = session.exec(
                update(BatchJobRow)
                .where(BatchJobRow.job_id == job_id, BatchJobRow.status.not_in([s.value for s in FINISHED]))
                .values(status=status.value, status_reason=reason, finished_at=when, **values)
            )
            session.commit()
            return bool(result.rowcount)
