"""Where each replica's own InferenceService listens, kept in Ray's GCS key-value store.

Ray Serve does not publish replica addresses, and a replica cannot reach the database, so each
replica that serves direct requests writes `{app}/{replica id} -> {"address", "heartbeat"}` under
the namespace below and rewrites it every HEARTBEAT_S. The server lists an application's entries
when a client asks for a route and keeps those whose heartbeat is recent: a replica that stops
gracefully deletes its entry, one that crashes simply ages out. The GCS is already the cluster's
source of truth for Serve itself, so this adds no service and works on a multi-node cluster.

Ray's internal KV functions are underscore-named but are what Ray's own libraries (Serve, Train,
Data) use for exactly this; they are imported lazily so unit tests need no cluster."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

NAMESPACE = "launch_routes"
HEARTBEAT_S = 2.0
STALE_AFTER_S = 3 * HEARTBEAT_S
FORGET_AFTER_S = 60.0  # entries of crashed replicas are deleted by the next lookup after this


@dataclass(frozen=True)
class ReplicaRoute:
    replica_id: str
    address: str
    heartbeat: float


def _key(app_name: str, replica_id: str) -> bytes:
    return f"{app_name}/{replica_id}".encode()


def publish(app_name: str, replica_id: str, address: str, now: float | None = None) -> None:
    from ray.experimental.internal_kv import _internal_kv_put

    value = json.dumps({"address": address, "heartbeat": time.time() if now is None else now})
    _internal_kv_put(_key(app_name, replica_id), value.encode(), overwrite=True, namespace=NAMESPACE)


def withdraw(app_name: str, replica_id: str) -> None:
    from ray.experimental.internal_kv import _internal_kv_del

    _internal_kv_del(_key(app_name, replica_id), namespace=NAMESPACE)


def parse_entries(entries: dict[bytes, bytes | None], now: float) -> list[ReplicaRoute]:
    """The fresh entries, sorted by replica id; malformed or stale ones are skipped."""
    routes = []
    for key, value in entries.items():
        if not value:
            continue
        try:
            data = json.loads(value)
            route = ReplicaRoute(key.decode().rsplit("/", 1)[-1], str(data["address"]), float(data["heartbeat"]))
        except (ValueError, KeyError, TypeError):
            continue
        if now - route.heartbeat <= STALE_AFTER_S:
            routes.append(route)
    return sorted(routes, key=lambda r: r.replica_id)


def expired_keys(entries: dict[bytes, bytes | None], now: float) -> list[bytes]:
    """Keys whose replica has not written for FORGET_AFTER_S (it crashed without withdrawing)."""
    expired = []
    for key, value in entries.items():
        try:
            if now - float(json.loads(value or b"{}")["heartbeat"]) > FORGET_AFTER_S:
                expired.append(key)
        except (ValueError, KeyError, TypeError):
            expired.append(key)
    return expired


def lookup(app_name: str, now: float | None = None) -> list[ReplicaRoute]:
    """The application's live replica routes (a blocking GCS call: run it off the event loop)."""
    from ray.experimental.internal_kv import _internal_kv_del, _internal_kv_get, _internal_kv_list

    now = time.time() if now is None else now
    keys = _internal_kv_list(f"{app_name}/".encode(), namespace=NAMESPACE)
    entries = {key: _internal_kv_get(key, namespace=NAMESPACE) for key in keys}
    for key in expired_keys(entries, now):
        _internal_kv_del(key, namespace=NAMESPACE)
    return parse_entries(entries, now)


def drop_application(app_name: str) -> None:
    """Forgets every entry of a deleted application."""
    from ray.experimental.internal_kv import _internal_kv_del

    _internal_kv_del(f"{app_name}/".encode(), del_by_prefix=True, namespace=NAMESPACE)


# ---- revoked API keys ---------------------------------------------------------------------------
# The servers write the ids of lately revoked API keys under `{serve app prefix}`; replicas read
# them on their heartbeat and refuse route tokens fetched with those keys (route_tokens.py).

REVOKED_NAMESPACE = "launch_revoked_keys"


def app_prefix(app_name: str, endpoint_id: str) -> str:
    """The Serve application prefix of `<prefix>-<endpoint id>` (the reconciler's app names)."""
    suffix = f"-{endpoint_id}"
    return app_name[: -len(suffix)] if app_name.endswith(suffix) else app_name


def publish_revoked(prefix: str, key_ids: set[str], now: float | None = None) -> None:
    from ray.experimental.internal_kv import _internal_kv_put

    value = json.dumps({"key_ids": sorted(key_ids), "written": time.time() if now is None else now})
    _internal_kv_put(prefix.encode(), value.encode(), overwrite=True, namespace=REVOKED_NAMESPACE)


def parse_revoked(value: bytes | None) -> set[str] | None:
    """The key ids a stored value names; an empty set when there is none, None when malformed."""
    if not value:
        return set()
    try:
        return {str(k) for k in json.loads(value)["key_ids"]}
    except (ValueError, KeyError, TypeError):
        return None


def revoked_keys(prefix: str) -> set[str] | None:
    """The revoked key ids the servers of this prefix published (a blocking GCS call)."""
    from ray.experimental.internal_kv import _internal_kv_get

    return parse_revoked(_internal_kv_get(prefix.encode(), namespace=REVOKED_NAMESPACE))
