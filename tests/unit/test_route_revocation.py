"""Route tokens name the API key that fetched them, so a revoked key's tokens stop at the
replicas before they expire (issue #11, finding 15): the token form, the replica's check and
what the servers publish for it. The end-to-end run is tests/integration/test_route_revocation.py."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from launch_server.domain.keys import ApiKeyService
from launch_server.replica import registry as replica_registry
from launch_server.serving import revocations
from launch_server.serving.revocations import RevocationPublisher
from launch_server.wire.route_tokens import SERVER_KEY_ID, TokenCheck, endpoint_key, expiry_of, mint
from tests.unit.test_key_checks import CountingRepo

SECRET = b"s" * 32


def test_a_token_names_its_key_and_the_signature_covers_it() -> None:
    token, expires = mint(SECRET, "ep1", ttl_s=60, now=1_000, key_id="0123456789ab")
    assert token.startswith("lr2.ep1.0123456789ab.1060.") and expiry_of(token) == expires == 1_060
    check = TokenCheck(endpoint_key(SECRET, "ep1"), "ep1")
    assert check.why_not(token, now=1_001) is None
    forged = token.replace(".0123456789ab.", ".ffffffffffff.")
    assert "signature" in (check.why_not(forged, now=1_001) or "")
    with pytest.raises(ValueError):
        mint(SECRET, "ep1", ttl_s=60, key_id="a.b")


def test_a_revoked_keys_tokens_are_refused_even_once_remembered() -> None:
    check = TokenCheck(endpoint_key(SECRET, "ep1"), "ep1")
    alice, _ = mint(SECRET, "ep1", ttl_s=300, now=1_000, key_id="aaaaaaaaaaaa")
    bob, _ = mint(SECRET, "ep1", ttl_s=300, now=1_000, key_id="bbbbbbbbbbbb")
    server, _ = mint(SECRET, "ep1", ttl_s=300, now=1_000)
    for token in (alice, bob, server):
        assert check.why_not(token, now=1_001) is None  # verified and remembered
    check.set_revoked({"aaaaaaaaaaaa"})
    assert "revoked" in (check.why_not(alice, now=1_002) or "")
    assert check.why_not(bob, now=1_002) is None
    assert check.why_not(server, now=1_002) is None and SERVER_KEY_ID in server
    fresh = TokenCheck(endpoint_key(SECRET, "ep1"), "ep1")
    fresh.set_revoked({"aaaaaaaaaaaa"})
    assert "revoked" in (fresh.why_not(alice, now=1_002) or "")  # not remembered yet either


def test_stored_lists_and_app_prefixes() -> None:
    assert replica_registry.parse_revoked(None) == set()
    assert replica_registry.parse_revoked(b'{"key_ids": ["a", "b"], "written": 1}') == {"a", "b"}
    assert replica_registry.parse_revoked(b"not json") is None
    assert replica_registry.app_prefix("launch-ab12", "ab12") == "launch"
    assert replica_registry.app_prefix("t1-x-ab12", "ab12") == "t1-x"


def test_the_publisher_writes_lately_revoked_keys_only(monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[tuple[str, set[str]]] = []
    monkeypatch.setattr(replica_registry, "publish_revoked", lambda prefix, ids: written.append((prefix, ids)))
    repo = CountingRepo()
    keys = ApiKeyService(repo)
    old, _ = keys.create("alice")
    new, _ = keys.create("alice")
    keys.create("alice")
    keys.revoke(old.key_id)
    keys.revoke(new.key_id)
    long_ago = datetime.now(UTC) - timedelta(days=1)
    repo.rows[old.key_id] = dataclasses.replace(repo.rows[old.key_id], revoked_at=long_ago)
    publisher = RevocationPublisher(keys, "launch", window_s=300, interval_s=1)
    assert publisher.publish_once() == {new.key_id}
    publisher.publish_once()  # unchanged: not written again until REWRITE_S
    assert written == [("launch", {new.key_id})]
    monkeypatch.setattr(revocations, "REWRITE_S", 0.0)
    publisher.publish_once()
    assert len(written) == 2
