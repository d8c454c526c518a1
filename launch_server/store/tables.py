"""Table definitions. The Alembic migrations in store/migrations create exactly these; a test
compares the migrated schema with this metadata so the two never drift."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def _utc_column(nullable: bool = False) -> Any:
    return Column(DateTime(timezone=True), nullable=nullable)


class ApiKeyRow(SQLModel, table=True):
    __tablename__ = "api_keys"

    key_id: str = Field(primary_key=True, max_length=32)
    owner: str = Field(index=True, max_length=63)
    secret_hash: str = Field(max_length=64)
    description: str = Field(default="", max_length=200)
    created_at: datetime = Field(sa_column=_utc_column())
    revoked_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))


class BundleRow(SQLModel, table=True):
    __tablename__ = "model_bundles"
    __table_args__ = (
        UniqueConstraint("owner", "name", name="uq_model_bundles_owner_name"),
        UniqueConstraint("owner", "request_id", name="uq_model_bundles_owner_request_id"),
        Index("ix_model_bundles_owner_created", "owner", "created_at"),
    )

    bundle_id: str = Field(primary_key=True, max_length=32)
    owner: str = Field(max_length=63)
    name: str = Field(max_length=63)
    packaging_type: str = Field(max_length=16)
    form: str = Field(max_length=48)
    requirements: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    env_params: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    bundle_metadata: dict = Field(default_factory=dict, sa_column=Column("metadata", JSON, nullable=False))
    app_config_json: str = Field(default="", sa_column=Column(Text, nullable=False))
    python_version: str = Field(default="", max_length=16)
    location: str = Field(sa_column=Column(Text, nullable=False))
    size_bytes: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    sha256: str = Field(default="", max_length=64)
    managed_artifact: bool = Field(default=True)
    request_id: str | None = Field(default=None, max_length=128)
    created_at: datetime = Field(sa_column=_utc_column())


class EndpointRow(SQLModel, table=True):
    __tablename__ = "model_endpoints"
    __table_args__ = (
        UniqueConstraint("owner", "name", name="uq_model_endpoints_owner_name"),
        UniqueConstraint("owner", "request_id", name="uq_model_endpoints_owner_request_id"),
    )

    endpoint_id: str = Field(primary_key=True, max_length=32)
    owner: str = Field(max_length=63)
    name: str = Field(max_length=63)
    bundle_id: str = Field(foreign_key="model_bundles.bundle_id", index=True, max_length=32)
    endpoint_type: str = Field(max_length=16)
    status: str = Field(max_length=32)
    status_reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    cpus: float = Field(default=3.0)
    memory: str = Field(default="8Gi", max_length=32)
    gpus: int = Field(default=0)
    gpu_type: str = Field(default="", max_length=64)
    storage: str = Field(default="", max_length=32)
    min_workers: int = Field(default=1)
    max_workers: int = Field(default=1)
    per_worker: int = Field(default=10)
    post_inference_hooks: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    default_callback_url: str = Field(default="", sa_column=Column(Text, nullable=False))
    labels: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    task_expiry_seconds: int = Field(default=86400)
    max_queue_size: int = Field(default=100000)
    task_timeout_seconds: int = Field(default=3600)
    # NULL: the bundle's own batch limits (EndpointSettings.max_batch_size / max_batch_wait_ms).
    max_batch_size: int | None = Field(default=None)
    max_batch_wait_ms: int | None = Field(default=None)
    generation: int = Field(default=1)
    request_id: str | None = Field(default=None, max_length=128)
    created_at: datetime = Field(sa_column=_utc_column())
    updated_at: datetime = Field(sa_column=_utc_column())


class EndpointEventRow(SQLModel, table=True):
    __tablename__ = "endpoint_events"

    id: int | None = Field(default=None, primary_key=True)
    endpoint_id: str = Field(index=True, max_length=32)
    time: datetime = Field(sa_column=_utc_column())
    status: str = Field(max_length=32)
    message: str = Field(sa_column=Column(Text, nullable=False))


class TaskRow(SQLModel, table=True):
    """One async request. Claimed with a lease (lease_owner, lease_expires_at) so a dead server's
    tasks are taken over; attempts counts starts (more than one means it ran again)."""

    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("owner", "request_id", name="uq_tasks_owner_request_id"),
        Index("ix_tasks_endpoint_state_created", "endpoint_id", "state", "created_at"),
        Index("ix_tasks_state_lease", "state", "lease_expires_at"),
        Index("ix_tasks_updated", "updated_at"),
        Index("ix_tasks_callback", "callback_state", "next_callback_at"),
    )

    task_id: str = Field(primary_key=True, max_length=32)
    owner: str = Field(max_length=63)
    endpoint_id: str = Field(max_length=32)
    endpoint_name: str = Field(max_length=63)
    state: str = Field(max_length=16)
    input_json: str = Field(sa_column=Column(Text, nullable=False))
    callback_url: str = Field(default="", sa_column=Column(Text, nullable=False))
    client_request_id: str = Field(default="", max_length=128)
    request_id: str | None = Field(default=None, max_length=160)
    result: str = Field(default="", sa_column=Column(Text, nullable=False))
    result_url: str = Field(default="", sa_column=Column(Text, nullable=False))
    traceback: str = Field(default="", sa_column=Column(Text, nullable=False))
    attempts: int = Field(default=0)
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_expires_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    created_at: datetime = Field(sa_column=_utc_column())
    updated_at: datetime = Field(sa_column=_utc_column())
    started_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    finished_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    expires_at: datetime = Field(sa_column=_utc_column())
    callback_state: str = Field(default="NONE", max_length=16)
    callback_attempts: int = Field(default=0)
    callback_error: str = Field(default="", sa_column=Column(Text, nullable=False))
    next_callback_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))


class BatchJobRow(SQLModel, table=True):
    """A batch job. Its inputs travel as chunk tasks on a temporary async endpoint (endpoint_id),
    so they are as durable as any task; the counts are refreshed while it runs."""

    __tablename__ = "batch_jobs"
    __table_args__ = (
        UniqueConstraint("owner", "request_id", name="uq_batch_jobs_owner_request_id"),
        Index("ix_batch_jobs_owner_created", "owner", "created_at"),
        Index("ix_batch_jobs_status", "status"),
    )

    job_id: str = Field(primary_key=True, max_length=32)
    owner: str = Field(max_length=63)
    bundle_name: str = Field(max_length=63)
    endpoint_id: str = Field(default="", max_length=32)
    status: str = Field(max_length=16)
    status_reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    serialization_format: str = Field(max_length=16)
    options: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    labels: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    total_count: int = Field(default=0)
    succeeded_count: int = Field(default=0)
    failed_count: int = Field(default=0)
    chunk_size: int = Field(default=100)
    result_url: str = Field(default="", sa_column=Column(Text, nullable=False))
    request_id: str | None = Field(default=None, max_length=128)
    created_at: datetime = Field(sa_column=_utc_column())
    started_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    finished_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))


class ServerSecretRow(SQLModel, table=True):
    """Secrets every server of one deployment must share (the route-token secret), kept in the
    database they already share so no operator has to copy them between hosts."""

    __tablename__ = "server_secrets"

    name: str = Field(primary_key=True, max_length=32)
    value: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=_utc_column())
