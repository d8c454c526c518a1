"""API-key checks under bad keys (issue #11, finding 10): a malformed key costs no query, an
unknown one costs one query and then none while it is remembered, the memory for made-up keys is
bounded, and a flood of made-up keys cannot take the threads that check real ones."""

from __future__ import annotations

import asyncio
import secrets
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from launch_server.api import auth
from launch_server.api.auth import AuthErrorsInterceptor
from launch_server.domain.entities import ApiKeyRecord
from launch_server.domain.errors import ResourceExhausted, Unauthenticated
from launch_server.domain.keys import ApiKeyService


class CountingRepo:
    """Counts the queries; get() of an id it does not hold can be made to wait on `gate`."""

    def __init__(self) -> None:
        self.rows: dict[str, ApiKeyRecord] = {}
        self.gets = 0
        self.gate: threading.Event | None = None
        self.waiting = 0
        self._lock = threading.Lock()

    def add(self, record: ApiKeyRecord) -> None:
        self.rows[record.key_id] = record

    def get(self, key_id: str) -> ApiKeyRecord | None:
        with self._lock:
            self.gets += 1
        if key_id not in self.rows and self.gate is not None:
            with self._lock:
                self.waiting += 1
            self.gate.wait(30)
            with self._lock:
                self.waiting -= 1
        return self.rows.get(key_id)

    def list(self, owner: str | None = None) -> list[ApiKeyRecord]:
        return [r for r in self.rows.values() if owner in (None, r.owner)]

    def revoke(self, key_id: str) -> bool:
        self.rows[key_id] = replace(self.rows[key_id], revoked_at=datetime.now(UTC))
        return True


def made_up_key() -> str:
    return f"lk_{secrets.token_hex(6)}_{'A' * 43}"


def test_malformed_keys_cost_no_query() -> None:
    repo = CountingRepo()
    keys = ApiKeyService(repo)
    for token in ["", "lk", "lk__", "lk_zzzzzzzzzzzz_" + "A" * 43, "lk_0123456789ab_short", "x" * 10_000]:
        with pytest.raises(Unauthenticated, match="malformed"):
            keys.authenticate(token)
    assert repo.gets == 0


def test_an_unknown_key_is_answered_from_memory_the_second_time() -> None:
    repo = CountingRepo()
    keys = ApiKeyService(repo, cache_seconds=0, unknown_key_cache_s=60)
    token = made_up_key()
    for _ in range(5):
        with pytest.raises(Unauthenticated, match="not valid"):
            keys.authenticate(token)
    assert repo.gets == 1
    with pytest.raises(Unauthenticated):
        keys.from_memory(token)  # what the interceptor asks first: no thread, no query


def test_a_wrong_secret_for_a_cached_key_costs_no_query() -> None:
    repo = CountingRepo()
    keys = ApiKeyService(repo, cache_seconds=60)
    record, good = keys.create("alice")
    assert keys.authenticate(good) == "alice"
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            keys.authenticate(f"lk_{record.key_id}_{'B' * 43}")
    assert repo.gets == 1


def test_revoked_keys_are_remembered_and_revoke_clears_the_cache() -> None:
    repo = CountingRepo()
    keys = ApiKeyService(repo, cache_seconds=60, unknown_key_cache_s=60)
    record, good = keys.create("alice")
    keys.authenticate(good)
    keys.revoke(record.key_id)
    for _ in range(3):
        with pytest.raises(Unauthenticated, match="revoked"):
            keys.authenticate(good)
    assert repo.gets == 2  # once valid, once revoked
    assert keys.revoked_since(datetime.now(UTC) - timedelta(minutes=5)) == {record.key_id}
    assert keys.revoked_since(datetime.now(UTC)) == set()


def test_memory_for_made_up_keys_is_bounded() -> None:
    repo = CountingRepo()
    keys = ApiKeyService(repo, cache_seconds=60, unknown_key_cache_s=60, max_cached_ids=100)
    _, good = keys.create("alice")
    for _ in range(1000):
        with pytest.raises(Unauthenticated):
            keys.authenticate(made_up_key())
    assert len(keys._records) <= 100
    assert keys.authenticate(good) == "alice"


class Context:
    def __init__(self, token: str) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


def test_a_flood_of_made_up_keys_leaves_a_thread_for_real_ones() -> None:
    asyncio.run(flood_with_a_real_key())


async def flood_with_a_real_key() -> None:
    repo = CountingRepo()
    keys = ApiKeyService(repo, cache_seconds=0)
    _, good = keys.create("alice")
    interceptor = AuthErrorsInterceptor(keys)
    await interceptor._authenticate(Context(good))  # seen once: its id is known from now on
    repo.gate = threading.Event()  # made-up keys' queries now hang until released
    flood = [asyncio.ensure_future(interceptor._authenticate(Context(made_up_key()))) for _ in range(50)]
    try:
        for _ in range(500):  # until the first made-up key's query is on a thread
            if repo.waiting:
                break
            await asyncio.sleep(0.01)
        for _ in range(3):  # answered while the flood waits (before the fix: never, both threads hang)
            await asyncio.wait_for(interceptor._authenticate(Context(good)), 10)
            assert auth.owner() == "alice"
        assert repo.waiting == 1  # made-up keys hold one thread at most
    finally:
        repo.gate.set()
    results = await asyncio.gather(*flood, return_exceptions=True)
    assert all(isinstance(r, Unauthenticated) for r in results)


def test_made_up_keys_beyond_the_waiting_limit_are_refused_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "MAX_UNKNOWN_WAITING", 10)
    asyncio.run(flood_past_the_limit())


async def flood_past_the_limit() -> None:
    repo = CountingRepo()
    interceptor = AuthErrorsInterceptor(ApiKeyService(repo, cache_seconds=0))
    repo.gate = threading.Event()
    flood = [asyncio.ensure_future(interceptor._authenticate(Context(made_up_key()))) for _ in range(30)]
    await asyncio.sleep(0.05)
    repo.gate.set()
    results = await asyncio.gather(*flood, return_exceptions=True)
    assert sum(isinstance(r, ResourceExhausted) for r in results) == 20
    assert sum(isinstance(r, Unauthenticated) for r in results) == 10
    assert repo.gets <= 10
