"""SQL repository for endpoints and their events."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, delete, select

from launch_server.domain.endpoints import (
    BATCH_ENDPOINT_PREFIX,
    Endpoint,
    EndpointEvent,
    EndpointSettings,
    EndpointStatus,
    EndpointType,
)
from launch_server.domain.entities import Page
from launch_server.domain.errors import AlreadyExists
from launch_server.store.db import writer
from launch_server.store.paging import newest_first, page
from launch_server.store.repositories import as_utc
from launch_server.store.tables import BundleRow, EndpointEventRow, EndpointRow


def _to_entity(row: EndpointRow, bundle_name: str) -> Endpoint:
    return Endpoint(
        endpoint_id=row.endpoint_id,
        owner=row.owner,
        name=row.name,
        bundle_id=row.bundle_id,
        bundle_name=bundle_name,
        settings=EndpointSettings(
            bundle_name=bundle_name,
            endpoint_type=EndpointType(row.endpoint_type),
            cpus=row.cpus,
            memory=row.memory,
            gpus=row.gpus,
            gpu_type=row.gpu_type,
            storage=row.storage,
            min_workers=row.min_workers,
            max_workers=row.max_workers,
            per_worker=row.per_worker,
            post_inference_hooks=tuple(row.post_inference_hooks),
            default_callback_url=row.default_callback_url,
            labels=dict(row.labels),
            task_expiry_seconds=row.task_expiry_seconds,
            max_queue_size=row.max_queue_size,
            task_timeout_seconds=row.task_timeout_seconds,
            max_batch_size=row.max_batch_size,
            max_batch_wait_ms=row.max_batch_wait_ms,
        ),
        status=EndpointStatus(row.status),
        status_reason=row.status_reason,
        generation=row.generation,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        request_id=row.request_id,
    )


def _apply_settings(row: EndpointRow, endpoint: Endpoint) -> None:
    s = endpoint.settings
    row.bundle_id = endpoint.bundle_id
    row.endpoint_type = s.endpoint_type.value
    row.cpus = s.cpus
    row.memory = s.memory
    row.gpus = s.gpus
    row.gpu_type = s.gpu_type
    row.storage = s.storage
    row.min_workers = s.min_workers
    row.max_workers = s.max_workers
    row.per_worker = s.per_worker
    row.post_inference_hooks = list(s.post_inference_hooks)
    row.default_callback_url = s.default_callback_url
    row.labels = dict(s.labels)
    row.task_expiry_seconds = s.task_expiry_seconds
    row.max_queue_size = s.max_queue_size
    row.task_timeout_seconds = s.task_timeout_seconds
    row.max_batch_size = s.max_batch_size
    row.max_batch_wait_ms = s.max_batch_wait_ms


def _now() -> datetime:
    return datetime.now(UTC)


class SqlEndpointRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    def _select(self):  # type: ignore[no-untyped-def]
        return select(EndpointRow, BundleRow.name).join(BundleRow, BundleRow.bundle_id == EndpointRow.bundle_id)

    def add(self, endpoint: Endpoint, event: str) -> Endpoint:
        row = EndpointRow(
            endpoint_id=endpoint.endpoint_id,
            owner=endpoint.owner,
            name=endpoint.name,
            status=endpoint.status.value,
            status_reason=endpoint.status_reason,
            generation=endpoint.generation,
            request_id=endpoint.request_id,
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
            bundle_id=endpoint.bundle_id,
            endpoint_type=endpoint.settings.endpoint_type.value,
        )
        _apply_settings(row, endpoint)
        with Session(self._writer) as session:
            session.add(row)
            session.add(
                EndpointEventRow(
                    endpoint_id=endpoint.endpoint_id, time=_now(), status=endpoint.status.value, message=event
                )
            )
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                if endpoint.request_id:
                    existing = self.get_by_request_id(endpoint.owner, endpoint.request_id)
                    if existing is not None:
                        return existing
                raise AlreadyExists("model endpoint", endpoint.name) from None
        return endpoint

    def _one(self, *conditions) -> Endpoint | None:  # type: ignore[no-untyped-def]
        with Session(self._engine) as session:
            found = session.exec(self._select().where(*conditions)).first()
            return _to_entity(found[0], found[1]) if found else None

    def get(self, owner: str, name: str) -> Endpoint | None:
        return self._one(EndpointRow.owner == owner, EndpointRow.name == name)

    def get_by_id(self, endpoint_id: str) -> Endpoint | None:
        return self._one(EndpointRow.endpoint_id == endpoint_id)

    def get_by_request_id(self, owner: str, request_id: str) -> Endpoint | None:
        return self._one(EndpointRow.owner == owner, EndpointRow.request_id == request_id)

    def list(self, owner: str, page_size: int, page_token: str) -> Page:
        # Batch jobs' own endpoints are an implementation detail of the job: not listed.
        query = newest_first(
            self._select().where(EndpointRow.owner == owner, EndpointRow.name.not_like(f"{BATCH_ENDPOINT_PREFIX}%")),
            EndpointRow.created_at,
            EndpointRow.endpoint_id,
            page_token,
            page_size,
        )
        with Session(self._engine) as session:
            items = [_to_entity(r, n) for r, n in session.exec(query)]
        return page(items, page_size, lambda e: (e.created_at, e.endpoint_id))

    def list_all(self) -> list[Endpoint]:
        with Session(self._engine) as session:
            return [_to_entity(r, n) for r, n in session.exec(self._select())]

    def update_settings(self, endpoint: Endpoint, event: str) -> Endpoint:
        with Session(self._writer) as session:
            row = session.get(EndpointRow, endpoint.endpoint_id, with_for_update=True)
            if row is None:
                from launch_server.domain.errors import NotFound

                raise NotFound("model endpoint", endpoint.name)
            _apply_settings(row, endpoint)
            row.generation += 1
            row.status = EndpointStatus.UPDATE_PENDING.value
            row.status_reason = "waiting for the serving layer to roll out the change"
            row.updated_at = _now()
            session.add(row)
            session.add(EndpointEventRow(endpoint_id=row.endpoint_id, time=_now(), status=row.status, message=event))
            session.commit()
            session.refresh(row)
            return _to_entity(row, endpoint.bundle_name)

    def set_status(self, endpoint_id: str, status: EndpointStatus, reason: str, generation: int | None = None) -> bool:
        with Session(self._writer) as session:
            row = session.get(EndpointRow, endpoint_id, with_for_update=True)
            if row is None or (generation is not None and row.generation != generation):
                return False
            if row.status == EndpointStatus.DELETE_IN_PROGRESS.value and status != EndpointStatus.DELETE_IN_PROGRESS:
                return False  # a deletion is never undone by a late status report
            if row.status == status.value and row.status_reason == reason:
                return True
            row.status = status.value
            row.status_reason = reason
            session.add(row)
            message = reason or {"READY": "ready: serving requests"}.get(status.value, status.value.lower())
            session.add(EndpointEventRow(endpoint_id=endpoint_id, time=_now(), status=status.value, message=message))
            session.commit()
            return True

    def add_event(self, endpoint_id: str, status: EndpointStatus, message: str) -> None:
        with Session(self._writer) as session:
            session.add(EndpointEventRow(endpoint_id=endpoint_id, time=_now(), status=status.value, message=message))
            session.commit()

    def events(self, endpoint_id: str, limit: int = 1000) -> list[EndpointEvent]:
        with Session(self._engine) as session:
            rows = session.exec(
                select(EndpointEventRow)
                .where(EndpointEventRow.endpoint_id == endpoint_id)
                .order_by(EndpointEventRow.id.desc())
                .limit(limit)
            ).all()
        return [EndpointEvent(as_utc(r.time), EndpointStatus(r.status), r.message) for r in reversed(rows)]

    def remove(self, endpoint_id: str) -> None:
        with Session(self._writer) as session:
            session.exec(delete(EndpointEventRow).where(EndpointEventRow.endpoint_id == endpoint_id))
            session.exec(delete(EndpointRow).where(EndpointRow.endpoint_id == endpoint_id))
            session.commit()
