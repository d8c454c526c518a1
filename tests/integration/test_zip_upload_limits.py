"""A zip bomb uploaded as a bundle answers INVALID_ARGUMENT and leaves no bundle and no object,
on both backends (SQLite + local storage, PostgreSQL + moto S3)."""

from __future__ import annotations

import grpc
import launch
import pytest

from tests.integration.test_bundles import client_for, raw_upload, stored_objects, zip_spec
from tests.support import ServerHandle
from tests.unit.test_zip_limits import one_big_entry


def test_zip_bomb_upload_is_invalid_argument(server: ServerHandle) -> None:
    before = stored_objects(server)
    with pytest.raises(grpc.RpcError) as err:
        raw_upload(server, "alice", zip_spec("bomb"), one_big_entry())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "compression" in err.value.details()
    assert stored_objects(server) == before
    with pytest.raises(launch.NotFoundError):
        client_for(server, "alice").get_model_bundle("bomb")
