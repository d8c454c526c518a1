"""Route tokens: how a replica knows a direct request was allowed by the server, without a
database or a call back to the server on the request path.

The servers hold one secret (in the database they share; LAUNCH_ROUTE_SECRET overrides it). Each
endpoint's replicas get only that endpoint's key, derived as HMAC(secret, endpoint id), so a
replica (which runs user code) can never mint tokens for another endpoint. A token names the
endpoint and an expiry and is signed with the endpoint key:

    lr1.<endpoint id>.<expiry, unix seconds>.<hex HMAC-SHA256>

The server mints a token only for the endpoint's owner (GetModelEndpointRoute checks the API key
like every RPC), so API-key revocation reaches the direct path when the token expires.

Standard library only: this module runs in replicas."""

from __future__ import annotations

import hashlib
import hmac
import time

PREFIX = "lr1"


def endpoint_key(secret: bytes, endpoint_id: str) -> bytes:
    """The key an endpoint's replicas verify with; knowing it gives nothing for other endpoints."""
    return hmac.new(secret, b"launch-route:" + endpoint_id.encode(), hashlib.sha256).digest()


def _signature(key: bytes, endpoint_id: str, expires: int) -> str:
    return hmac.new(key, f"{PREFIX}.{endpoint_id}.{expires}".encode(), hashlib.sha256).hexdigest()


def mint(secret: bytes, endpoint_id: str, ttl_s: float, now: float | None = None) -> tuple[str, int]:
    """A token for one endpoint and its expiry (unix seconds)."""
    expires = int((time.time() if now is None else now) + ttl_s)
    key = endpoint_key(secret, endpoint_id)
    return f"{PREFIX}.{endpoint_id}.{expires}.{_signature(key, endpoint_id, expires)}", expires


def expiry_of(token: str) -> int:
    """A token's expiry (unix seconds) as it states it, unverified; 0 when it is no token. A newer
    token of one endpoint expires later (the server renews at half their life)."""
    parts = token.split(".")
    return int(parts[2]) if len(parts) == 4 and parts[0] == PREFIX and parts[2].isdigit() else 0


class TokenCheck:
    """Verifies tokens for one endpoint inside its replica. Verified tokens are remembered until
    they expire, so the steady state costs one dict lookup per request instead of an HMAC."""

    def __init__(self, key: bytes, endpoint_id: str) -> None:
        self._key = key
        self._endpoint_id = endpoint_id
        self._verified: dict[str, int] = {}

    def why_not(self, token: str, now: float | None = None) -> str | None:
        """None when the token is good; otherwise the reason, for the UNAUTHENTICATED message."""
        now = time.time() if now is None else now
        expires = self._verified.get(token)
        if expires is not None:
            if now < expires:
                return None
            self._verified.pop(token, None)
            return "the route token has expired; ask the server for a new route"
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != PREFIX:
            return "not a route token (GetModelEndpointRoute gives one)"
        _, endpoint_id, expires_text, signature = parts
        if endpoint_id != self._endpoint_id:
            return "the route token is for another endpoint"
        if not expires_text.isdigit():
            return "malformed route token"
        expires = int(expires_text)
        if not hmac.compare_digest(signature, _signature(self._key, endpoint_id, expires)):
            return "the route token's signature does not match"
        if now >= expires:
            return "the route token has expired; ask the server for a new route"
        if len(self._verified) > 10_000:  # tokens are few; bound the memory anyway
            self._verified.clear()
        self._verified[token] = expires
        return None
