"""Repositories: the only code that speaks SQL. Each method is one short transaction."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from launch_server.domain.entities import ApiKeyRecord, Bundle, BundleForm, PackagingType, Page
from launch_server.domain.errors import AlreadyExists, FailedPrecondition, NotFound
from launch_server.store.db import writer
from launch_server.store.paging import newest_first, page
from launch_server.store.tables import ApiKeyRow, BundleRow, EndpointRow


def as_utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes; every entity carries aware UTC ones."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _bundle_from_row(row: BundleRow) -> Bundle:
    return Bundle(
        bundle_id=row.bundle_id,
        owner=row.owner,
        name=row.name,
        packaging_type=PackagingType(row.packaging_type),
        form=BundleForm(row.form),
        requirements=tuple(row.requirements),
        env_params=dict(row.env_params),
        metadata=dict(row.bundle_metadata),
        app_config_json=row.app_config_json,
        python_version=row.python_version,
        location=row.location,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        managed_artifact=row.managed_artifact,
        created_at=as_utc(row.created_at),
        request_id=row.request_id,
    )


class SqlBundleRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    def add(self, bundle: Bundle) -> Bundle:
        row = BundleRow(
            bundle_id=bundle.bundle_id,
            owner=bundle.owner,
            name=bundle.name,
            packaging_type=bundle.packaging_type.value,
            form=bundle.form.value,
            requirements=list(bundle.requirements),
            env_params=dict(bundle.env_params),
            bundle_metadata=dict(bundle.metadata),
            app_config_json=bundle.app_config_json,
            python_version=bundle.python_version,
            location=bundle.location,
            size_bytes=bundle.size_bytes,
            sha256=bundle.sha256,
            managed_artifact=bundle.managed_artifact,
            request_id=bundle.request_id,
            created_at=bundle.created_at,
        )
        with Session(self._writer) as session:
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                if bundle.request_id:
                    existing = self.get_by_request_id(bundle.owner, bundle.request_id)
                    if existing is not None:
                        return existing
                raise AlreadyExists("model bundle", bundle.name) from None
        return bundle

    def get(self, owner: str, name: str) -> Bundle | None:
        with Session(self._engine) as session:
            row = session.exec(select(BundleRow).where(BundleRow.owner == owner, BundleRow.name == name)).first()
            return _bundle_from_row(row) if row else None

    def get_by_id(self, bundle_id: str) -> Bundle | None:
        with Session(self._engine) as session:
            row = session.get(BundleRow, bundle_id)
            return _bundle_from_row(row) if row else None

    def get_by_request_id(self, owner: str, request_id: str) -> Bundle | None:
        with Session(self._engine) as session:
            row = session.exec(
                select(BundleRow).where(BundleRow.owner == owner, BundleRow.request_id == request_id)
            ).first()
            return _bundle_from_row(row) if row else None

    def list(self, owner: str, page_size: int, page_token: str) -> Page:
        query = newest_first(
            select(BundleRow).where(BundleRow.owner == owner),
            BundleRow.created_at,
            BundleRow.bundle_id,
            page_token,
            page_size,
        )
        with Session(self._engine) as session:
            items = [_bundle_from_row(r) for r in session.exec(query)]
        return page(items, page_size, lambda b: (b.created_at, b.bundle_id))

    def delete(self, owner: str, name: str) -> Bundle:
        with Session(self._writer) as session:
            row = session.exec(
                select(BundleRow).where(BundleRow.owner == owner, BundleRow.name == name).with_for_update()
            ).first()
            if row is None:
                raise NotFound("model bundle", name)
            users = session.exec(select(EndpointRow.name).where(EndpointRow.bundle_id == row.bundle_id)).all()
            if users:
                raise FailedPrecondition(
                    f"model bundle {name!r} is used by endpoint(s) {sorted(users)}; delete or edit them first"
                )
            bundle = _bundle_from_row(row)
            session.delete(row)
            try:
                session.commit()
            except IntegrityError:
                # An endpoint was created against this bundle between our check and the commit.
                session.rollback()
                raise FailedPrecondition(f"model bundle {name!r} is in use by an endpoint") from None
            return bundle


def _key_from_row(row: ApiKeyRow) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=row.key_id,
        owner=row.owner,
        secret_hash=row.secret_hash,
        description=row.description,
        created_at=as_utc(row.created_at),
        revoked_at=as_utc(row.revoked_at) if row.revoked_at else None,
    )


class SqlApiKeyRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    def add(self, record: ApiKeyRecord) -> None:
        with Session(self._writer) as session:
            session.add(
                ApiKeyRow(
                    key_id=record.key_id,
                    owner=record.owner,
                    secret_hash=record.secret_hash,
                    description=record.description,
                    created_at=record.created_at,
                    revoked_at=record.revoked_at,
                )
            )
            session.commit()

    def get(self, key_id: str) -> ApiKeyRecord | None:
        with Session(self._engine) as session:
            row = session.get(ApiKeyRow, key_id)
            return _key_from_row(row) if row else None

    def list(self, owner: str | None = None) -> list[ApiKeyRecord]:
        query = select(ApiKeyRow).order_by(ApiKeyRow.created_at)
        if owner:
            query = query.where(ApiKeyRow.owner == owner)
        with Session(self._engine) as session:
            return [_key_from_row(r) for r in session.exec(query)]

    def revoke(self, key_id: str) -> bool:
        with Session(self._writer) as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = datetime.now(UTC)
            session.add(row)
            session.commit()
            return True
