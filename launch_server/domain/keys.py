"""API keys: generation, hashing and authentication with short-lived caches.

A key reads `lk_<key_id>_<secret>`: 12 hex digits, then 43 letters and digits. Only
sha256(secret) is stored: the secret is 256 random bits, so a fast hash is enough (no password
stretching needed) and lets every RPC check its key cheaply.

What the database said about a key id is remembered, so the hot path does no round trip and bad
keys cannot buy queries: a record for `cache_seconds` (a revocation takes effect within that time,
on every server sharing the database), an id with no record, or a revoked key, for
`unknown_key_cache_s` (ids are random, so an unknown one is not about to be created, and a
revocation is final). A key that is not of the form above is refused before any query."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime

from launch_server.domain.entities import ApiKeyRecord
from launch_server.domain.errors import InvalidArgument, Unauthenticated
from launch_server.domain.key_cache import MISSING, ExpiringMap
from launch_server.domain.ports import ApiKeyRepository
from launch_server.domain.validation import validate_name

PREFIX = "lk"
KEY_PATTERN = re.compile(rf"{PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9]{{43}})")
MAX_CACHED_IDS = 10_000
KNOWN_ID_S = 3600.0  # how long an id that had a record counts as known (the interceptor's fast lane)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(token: str) -> tuple[str, str]:
    """The key id and secret; Unauthenticated (no query made) when it is not a key's form."""
    match = KEY_PATTERN.fullmatch(token)
    if match is None:
        raise Unauthenticated("API key is malformed: expected 'lk_<12 hex digits>_<43 letters and digits>'")
    return match.group(1), match.group(2)


def _owner_of(record: ApiKeyRecord | None, secret: str) -> str:
    """The key's owner, or Unauthenticated; never says which part was wrong."""
    if record is None or not hmac.compare_digest(record.secret_hash, hash_secret(secret)):
        raise Unauthenticated("API key is not valid")
    if record.revoked_at is not None:
        raise Unauthenticated("API key has been revoked")
    return record.owner


class ApiKeyService:
    def __init__(
        self,
        repo: ApiKeyRepository,
        cache_seconds: float = 2.0,
        unknown_key_cache_s: float = 30.0,
        max_cached_ids: int = MAX_CACHED_IDS,
    ) -> None:
        self._repo = repo
        self._cache_seconds = cache_seconds
        self._unknown_key_cache_s = unknown_key_cache_s
        self._records: ExpiringMap[ApiKeyRecord | None] = ExpiringMap(max_cached_ids)
        self._known_ids: ExpiringMap[bool] = ExpiringMap(max_cached_ids)

    def create(self, owner: str, description: str = "") -> tuple[ApiKeyRecord, str]:
        """Returns the record and the plaintext key, which is shown once and never stored."""
        validate_name("owner", owner)
        if len(description) > 200:
            raise InvalidArgument("description", "must be at most 200 characters")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32).replace("_", "A").replace("-", "B")
        record = ApiKeyRecord(
            key_id=key_id,
            owner=owner,
            secret_hash=hash_secret(secret),
            description=description,
            created_at=datetime.now(UTC),
        )
        self._repo.add(record)
        return record, f"{PREFIX}_{key_id}_{secret}"

    def list(self, owner: str | None = None) -> list[ApiKeyRecord]:
        return self._repo.list(owner)

    def revoke(self, key_id: str) -> bool:
        self._records.discard(key_id)
        return self._repo.revoke(key_id)

    def revoked_since(self, cutoff: datetime) -> set[str]:
        """The ids of keys revoked after `cutoff` (the direct route's replicas refuse their route
        tokens). One read of the key table, which holds one row per key ever made: small."""
        return {r.key_id for r in self._repo.list() if r.revoked_at is not None and r.revoked_at > cutoff}

    def from_memory(self, token: str) -> str | None:
        """The owner when the caches can answer for the key, None when the database must; raises
        Unauthenticated for a malformed key and for one the caches know to be bad."""
        key_id, secret = parse_key(token)
        record = self._records.get(key_id)
        if record is MISSING:
            return None
        return _owner_of(record, secret)  # type: ignore[arg-type]

    def cached_owner(self, token: str) -> str | None:
        """The owner of a key validated within the cache period; None when it must be checked."""
        try:
            return self.from_memory(token)
        except Unauthenticated:
            return None

    def is_known(self, token: str) -> bool:
        """Whether the key's id had a record lately: its check is likely a real client's."""
        try:
            key_id, _ = parse_key(token)
        except Unauthenticated:
            return False
        return self._known_ids.get(key_id) is not MISSING

    def authenticate(self, token: str) -> str:
        """Returns the key's owner or raises Unauthenticated; never says which part was wrong."""
        owner = self.from_memory(token)
        if owner is not None:
            return owner
        key_id, secret = parse_key(token)
        record = self._repo.get(key_id)
        if record is None or record.revoked_at is not None:
            self._records.put(key_id, record, self._unknown_key_cache_s)
        else:
            self._records.put(key_id, record, self._cache_seconds)
        if record is not None:
            self._known_ids.put(key_id, True, KNOWN_ID_S)
        return _owner_of(record, secret)

    def key_id_of(self, token: str) -> str:
        """The id part of a key already authenticated (route tokens name it)."""
        return parse_key(token)[0]
