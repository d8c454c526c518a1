"""Wires the layers together: engine, repositories, storage and domain services. The gRPC server
and the key-management CLI both build on this, so they see the same database and rules."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from launch_server.domain.bundles import BundleService
from launch_server.domain.endpoints import EndpointService
from launch_server.domain.keys import ApiKeyService
from launch_server.settings import Settings
from launch_server.storage import open_storage
from launch_server.store.db import DbTimeouts, make_engine, upgrade
from launch_server.store.endpoint_repository import SqlEndpointRepository
from launch_server.store.repositories import SqlApiKeyRepository, SqlBundleRepository


@dataclass
class App:
    settings: Settings
    engine: Engine
    keys: ApiKeyService
    bundles: BundleService
    bundle_repo: SqlBundleRepository
    endpoint_repo: SqlEndpointRepository
    endpoints: EndpointService

    def close(self) -> None:
        self.engine.dispose()


def build_app(settings: Settings, migrate: bool = True) -> App:
    settings = settings.resolved()
    if migrate:
        upgrade(settings.database_url)
    engine = make_engine(
        settings.database_url,
        DbTimeouts(settings.db_connect_timeout_s, settings.db_statement_timeout_s, settings.db_pool_timeout_s),
    )
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url, settings.s3_region)
    bundle_repo = SqlBundleRepository(engine)
    endpoint_repo = SqlEndpointRepository(engine)
    return App(
        settings=settings,
        engine=engine,
        keys=ApiKeyService(
            SqlApiKeyRepository(engine),
            cache_seconds=settings.auth_cache_seconds,
            unknown_key_cache_s=settings.auth_unknown_key_cache_s,
        ),
        bundles=BundleService(
            bundle_repo,
            storage,
            max_upload_bytes=settings.max_upload_bytes,
            readable_prefixes=settings.readable_prefixes,
        ),
        bundle_repo=bundle_repo,
        endpoint_repo=endpoint_repo,
        endpoints=EndpointService(endpoint_repo, bundle_repo),
    )


def ensure_dev_key(app: App) -> str | None:
    """On a fresh database, creates a key for owner 'dev', writes it to the data directory with
    owner-only permissions and returns it, so the embedded-defaults quick start needs no setup."""
    if app.keys.list():
        return None
    _, key = app.keys.create("dev", description="development key created on first start")
    path = app.settings.dev_key_file
    assert path is not None
    # Created owner-only in one step (never readable in between, whatever the umask); a file
    # left from an earlier database holds a key that no longer exists, so it is replaced.
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key
