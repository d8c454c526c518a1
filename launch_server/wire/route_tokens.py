"""Route tokens: how a replica knows a direct request was allowed by the server, without a
database or a call back to the server on the request path.

The servers hold one secret (in the database they share; LAUNCH_ROUTE_SECRET overrides it). Each
endpoint's replicas get only that endpoint's key, derived as HMAC(secret, endpoint id), so a
replica (which runs user code) can never mint tokens for another endpoint. A token names the
endpoint, the API key it was fetched with and an expiry, and is signed with the endpoint key:

    lr2.<endpoint id>.<API key id>.<expiry, unix seconds>.<hex HMAC-SHA256>

The server mints a token only for the endpoint's owner (GetModelEndpointRoute checks the API key
like every RPC). Because the token names its key, revoking the key stops its tokens before they
expire: the servers publish the ids of lately revoked keys (revocations.py) and each replica
reads them on its heartbeat and refuses those keys' tokens. Tokens the server mints for its own
calls (the dispatcher's task channels) name SERVER_KEY_ID, which no API key has. The older
`lr1` form, which named no key, is not accepted: nothing could revoke it.

Standard library only: this module runs in replicas."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable

PREFIX = "lr2"
SERVER_KEY_ID = "server"  # API key ids are hex digits: this names none of them


def endpoint_key(secret: bytes, endpoint_id: str) -> bytes:
    """The key an endpoint's replicas verify with; knowing it gives nothing for other endpoints."""
    return hmac.new(secret, b"launch-route:" + endpoint_id.encode(), hashlib.sha256).digest()


def _signature(key: bytes, endpoint_id: str, key_id: str, expires: int) -> str:
    return hmac.new(key, f"{PREFIX}.{endpoint_id}.{key_id}.{expires}".encode(), hashlib.sha256).hexdigest()


def mint(
    secret: bytes, endpoint_id: str, ttl_s: float, now: float | None = None, key_id: str = SERVER_KEY_ID
) -> tuple[str, int]:
    """A token for one endpoint, fetched with API key `key_id`, and its expiry (unix seconds)."""
    if not key_id or "." in key_id:
        raise ValueError(f"not a key id for a route token: {key_id!r}")
    expires = int((time.time() if now is None else now) + ttl_s)
    key = endpoint_key(secret, endpoint_id)
    return f"{PREFIX}.{endpoint_id}.{key_id}.{expires}.{_signature(key, endpoint_id, key_id, expires)}", expires


def expiry_of(token: str) -> int:
    """A token's expiry (unix seconds) as it states it, unverified; 0 when it is no token. A newer
    token of one endpoint expires later (the server renews at half their life)."""
    parts = token.split(".")
    return int(parts[3]) if len(parts) == 5 and parts[0] == PREFIX and parts[3].isdigit() else 0


class TokenCheck:
    """Verifies tokens for one endpoint inside its replica. Verified tokens are remembered until
    they expire, so the steady state costs two dict lookups per request instead of an HMAC; the
    key-revocation check runs on every request, remembered or not."""

    def __init__(self, key: bytes, endpoint_id: str) -> None:
        self._key = key
        self._endpoint_id = endpoint_id
        self._verified: dict[str, tuple[int, str]] = {}  # token -> (expiry, API key id)
        self._revoked: frozenset[str] = frozenset()

    def set_revoked(self, key_ids: Iterable[str]) -> None:
        """The API keys whose tokens are refused from now on (the servers' latest list)."""
        self._revoked = frozenset(key_ids)

    def why_not(self, token: str, now: float | None = None) -> str | None:
        """None when the token is good; otherwise the reason, for the UNAUTHENTICATED message."""
        now = time.time() if now is None else now
        known = self._verified.get(token)
        if known is not None:
            expires, key_id = known
            if now >= expires:
                self._verified.pop(token, None)
                return "the route token has expired; ask the server for a new route"
            return self._revoked_reason(key_id)
        parts = token.split(".")
        if len(parts) != 5 or parts[0] != PREFIX:
            return "not a route token (GetModelEndpointRoute gives one)"
        _, endpoint_id, key_id, expires_text, signature = parts
        if endpoint_id != self._endpoint_id:
            return "the route token is for another endpoint"
        if not expires_text.isdigit() or not key_id:
            return "malformed route token"
        expires = int(expires_text)
        if not hmac.compare_digest(signature, _signature(self._key, endpoint_id, key_id, expires)):
            return "the route token's signature does not match"
        if now >= expires:
            return "the route token has expired; ask the server for a new route"
        if len(self._verified) > 10_000:  # tokens are few; bound the memory anyway
            self._verified.clear()
        self._verified[token] = (expires, key_id)
        return self._revoked_reason(key_id)

    def _revoked_reason(self, key_id: str) -> str | None:
        if key_id in self._revoked:
            return "the API key this route was fetched with has been revoked"
        return None
