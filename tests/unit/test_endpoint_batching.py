"""An endpoint's dynamic-batching limits (EndpointSettings.max_batch_size / max_batch_wait_ms,
ModelEndpoint.batching in the contract) through each server layer: the proto conversions (unset
is None, not a default), the bounds and the field each refusal names, update masks that set and
clear them, and the store on SQLite and PostgreSQL (migration 0006 both ways). That the reconciler deploys
with them is tested on a real cluster (tests/integration/test_batching_endpoints.py)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from launch.v1 import model_endpoint_pb2 as epb

from launch_server.api.convert import changes_from_mask, endpoint_to_proto, settings_from_proto
from launch_server.domain.batch_limits import MAX_BATCH_SIZE, MAX_BATCH_WAIT_MS
from launch_server.domain.endpoints import Endpoint, EndpointSettings, EndpointStatus, validate_settings
from launch_server.domain.entities import Bundle, BundleForm, PackagingType
from launch_server.domain.errors import InvalidArgument
from launch_server.store.db import alembic_config, make_engine, upgrade
from launch_server.store.endpoint_repository import SqlEndpointRepository
from launch_server.store.repositories import SqlBundleRepository
from tests.support import create_pg_database, drop_pg_database

NOW = datetime(2026, 12, 3, tzinfo=UTC)


def endpoint_message(**batching: int) -> epb.ModelEndpoint:
    return epb.ModelEndpoint(
        name="ep",
        bundle_name="b",
        endpoint_type=epb.ENDPOINT_TYPE_SYNC,
        batching=epb.BatchSettings(**batching) if batching else None,
    )


def bundle(owner: str = "alice") -> Bundle:
    return Bundle(
        bundle_id=uuid.uuid4().hex,
        owner=owner,
        name="b",
        packaging_type=PackagingType.CLOUDPICKLE,
        form=BundleForm.PREDICT_FN_OR_CLS,
        requirements=(),
        env_params={},
        metadata={},
        app_config_json="",
        python_version="3.11",
        location="file:///nonexistent/b.pkl",
        size_bytes=1,
        sha256="0" * 64,
        managed_artifact=False,
        created_at=NOW,
    )


def endpoint(b: Bundle, settings: EndpointSettings) -> Endpoint:
    return Endpoint(
        endpoint_id=uuid.uuid4().hex,
        owner=b.owner,
        name="ep",
        bundle_id=b.bundle_id,
        bundle_name=b.name,
        settings=settings,
        status=EndpointStatus.UPDATE_PENDING,
        status_reason="",
        generation=1,
        created_at=NOW,
        updated_at=NOW,
    )


# ---- conversions ---------------------------------------------------------------------------------


def test_unset_batching_is_none_both_ways() -> None:
    settings = settings_from_proto(endpoint_message())
    assert (settings.max_batch_size, settings.max_batch_wait_ms) == (None, None)
    assert not endpoint_to_proto(endpoint(bundle(), settings)).HasField("batching")


@pytest.mark.parametrize(
    ("batching", "expected"),
    [
        ({"max_batch_size": 64, "max_wait_ms": 5}, (64, 5)),
        ({"max_batch_size": 1}, (1, None)),
        ({"max_wait_ms": 0}, (None, 0)),  # an explicit 0 (start at once) is kept, not dropped
    ],
)
def test_set_batching_round_trips_and_only_set_fields_go_out(batching: dict[str, int], expected: tuple) -> None:
    settings = settings_from_proto(endpoint_message(**batching))
    assert (settings.max_batch_size, settings.max_batch_wait_ms) == expected
    out = endpoint_to_proto(endpoint(bundle(), settings)).batching
    assert out.HasField("max_batch_size") == (expected[0] is not None)
    assert out.HasField("max_wait_ms") == (expected[1] is not None)
    assert settings_from_proto(endpoint_message(**batching)) == dataclasses.replace(
        settings_from_proto(epb.ModelEndpoint(name="ep", bundle_name="b", endpoint_type=epb.ENDPOINT_TYPE_SYNC)),
        max_batch_size=expected[0],
        max_batch_wait_ms=expected[1],
    )


# ---- bounds ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"max_batch_size": 0}, "endpoint.batching.max_batch_size"),
        ({"max_batch_size": MAX_BATCH_SIZE + 1}, "endpoint.batching.max_batch_size"),
        ({"max_batch_size": -1}, "endpoint.batching.max_batch_size"),
        ({"max_batch_wait_ms": -1}, "endpoint.batching.max_wait_ms"),
        ({"max_batch_wait_ms": MAX_BATCH_WAIT_MS + 1}, "endpoint.batching.max_wait_ms"),
    ],
)
def test_out_of_bounds_limits_name_their_field(change: dict[str, int], field: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        validate_settings(EndpointSettings(bundle_name="b", **change))
    assert refused.value.field == field


def test_the_bounds_themselves_are_accepted() -> None:
    for size, wait in ((1, 0), (MAX_BATCH_SIZE, MAX_BATCH_WAIT_MS), (None, None)):
        validate_settings(EndpointSettings(bundle_name="b", max_batch_size=size, max_batch_wait_ms=wait))


def test_the_prefix_is_the_callers() -> None:
    with pytest.raises(InvalidArgument) as refused:
        validate_settings(EndpointSettings(bundle_name="b", max_batch_wait_ms=MAX_BATCH_WAIT_MS + 1), prefix="job")
    assert refused.value.field == "job.batching.max_wait_ms"


# ---- update masks ---------------------------------------------------------------------------------


def test_a_mask_path_sets_its_limit() -> None:
    changes = changes_from_mask(endpoint_message(max_batch_size=16), ["batching.max_batch_size"])
    assert changes == {"max_batch_size": 16}


def test_a_mask_path_with_its_field_unset_clears_it() -> None:
    assert changes_from_mask(endpoint_message(), ["batching.max_wait_ms"]) == {"max_batch_wait_ms": None}
    only_size = endpoint_message(max_batch_size=4)
    assert changes_from_mask(only_size, ["batching.max_wait_ms"]) == {"max_batch_wait_ms": None}


def test_the_batching_group_names_both() -> None:
    changes = changes_from_mask(endpoint_message(max_wait_ms=7), ["batching"])
    assert changes == {"max_batch_size": None, "max_batch_wait_ms": 7}


# ---- the store, and migration 0006 ----------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'batching.db'}"
        return
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


def test_the_store_keeps_set_and_unset_limits(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        b = SqlBundleRepository(engine).add(bundle())
        repo = SqlEndpointRepository(engine)
        created = endpoint(b, EndpointSettings(bundle_name=b.name, max_batch_size=MAX_BATCH_SIZE, max_batch_wait_ms=0))
        repo.add(created, "created")
        stored = repo.get(b.owner, "ep")
        assert stored is not None
        assert (stored.settings.max_batch_size, stored.settings.max_batch_wait_ms) == (MAX_BATCH_SIZE, 0)
        cleared = dataclasses.replace(stored.settings, max_batch_size=None, max_batch_wait_ms=MAX_BATCH_WAIT_MS)
        updated = repo.update_settings(stored.replace(settings=cleared), "edited")
        assert updated.generation == stored.generation + 1  # so the reconciler redeploys with them
        again = repo.get_by_id(created.endpoint_id)
        assert again is not None
        assert (again.settings.max_batch_size, again.settings.max_batch_wait_ms) == (None, MAX_BATCH_WAIT_MS)
    finally:
        engine.dispose()


def _columns(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return {c["name"] for c in sa.inspect(engine).get_columns("model_endpoints")}
    finally:
        engine.dispose()


def test_migration_0006_adds_and_drops_the_columns(database_url: str) -> None:
    upgrade(database_url)
    assert {"max_batch_size", "max_batch_wait_ms"} <= _columns(database_url)
    command.downgrade(alembic_config(database_url), "0005")
    assert not {"max_batch_size", "max_batch_wait_ms"} & _columns(database_url)
    upgrade(database_url)
    assert {"max_batch_size", "max_batch_wait_ms"} <= _columns(database_url)


def test_an_endpoint_from_before_0006_keeps_the_bundles_limits(database_url: str) -> None:
    upgrade(database_url)
    command.downgrade(alembic_config(database_url), "0005")
    engine = make_engine(database_url)
    try:
        b = SqlBundleRepository(engine).add(bundle())
        now = NOW.isoformat()
        with engine.begin() as conn:  # the row as a 0005 server wrote it
            conn.execute(
                sa.text(
                    "INSERT INTO model_endpoints (endpoint_id, owner, name, bundle_id, endpoint_type, status,"
                    " status_reason, cpus, memory, gpus, gpu_type, storage, min_workers, max_workers, per_worker,"
                    " post_inference_hooks, default_callback_url, labels, task_expiry_seconds, max_queue_size,"
                    " task_timeout_seconds, generation, created_at, updated_at) VALUES (:id, :owner, 'old', :bundle,"
                    " 'SYNC', 'READY', '', 1, '1Gi', 0, '', '', 1, 1, 1, '[]', '', '{}', 60, 10, 60, 1, :now, :now)"
                ),
                {"id": uuid.uuid4().hex, "owner": b.owner, "bundle": b.bundle_id, "now": now},
            )
    finally:
        engine.dispose()
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        old = SqlEndpointRepository(engine).get(b.owner, "old")
        assert old is not None
        assert (old.settings.max_batch_size, old.settings.max_batch_wait_ms) == (None, None)
    finally:
        engine.dispose()
