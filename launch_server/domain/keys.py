"""API keys: generation, hashing and authentication with a short-lived cache.

A key reads `lk_<key_id>_<secret>`. Only sha256(secret) is stored: the secret is 256 random bits,
so a fast hash is enough (no password stretching needed) and lets every RPC check its key cheaply.
Validated keys are cached for `cache_seconds` so the hot path does no database round trip; a
revocation takes effect within that time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from .entities import ApiKeyRecord
from .errors import InvalidArgument, Unauthenticated
from .ports import ApiKeyRepository
from .validation import validate_name

PREFIX = "lk"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(token: str) -> tuple[str, str]:
    parts = token.split("_")
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        raise Unauthenticated("API key is malformed: expected 'lk_<id>_<secret>'")
    return parts[1], parts[2]


@dataclass
class _CacheEntry:
    owner: str
    expires: float


class ApiKeyService:
    def __init__(self, repo: ApiKeyRepository, cache_seconds: float = 2.0) -> None:
        self._repo = repo
        self._cache_seconds = cache_seconds
        self._cache: dict[str, _CacheEntry] = {}

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
        self._cache = {k: v for k, v in self._cache.items() if not k.startswith(f"{PREFIX}_{key_id}_")}
        return self._repo.revoke(key_id)

    def cached_owner(self, token: str) -> str | None:
        """The owner of a key validated within the cache period; None when it must be checked."""
        entry = self._cache.get(token)
        return entry.owner if entry is not None and entry.expires > time.monotonic() else None

    def authenticate(self, token: str) -> str:
        """Returns the key's owner or raises Unauthenticated; never says which part was wrong."""
        now = time.monotonic()
        owner = self.cached_owner(token)
        if owner is not None:
            return owner
        key_id, secret = parse_key(token)
        record = self._repo.get(key_id)
        if record is None or not hmac.compare_digest(record.secret_hash, hash_secret(secret)):
            raise Unauthenticated("API key is not valid")
        if record.revoked_at is not None:
            raise Unauthenticated("API key has been revoked")
        if self._cache_seconds > 0:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[token] = _CacheEntry(record.owner, now + self._cache_seconds)
        return record.owner
