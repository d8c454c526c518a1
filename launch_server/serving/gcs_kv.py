"""Reading many keys of Ray's GCS key-value store in one round trip.

Ray's public-ish helpers (ray.experimental.internal_kv) get one key per call; the GCS client
underneath them answers a list of keys at once. The servers read whole namespaces every couple
of seconds (replica figures, desired workers, runtime log chunks), so one call per pass keeps that
cost flat as endpoints and replicas grow, instead of one GCS request per key. Falls back to one
get per key where the client lacks the call."""

from __future__ import annotations

MAX_KEYS_PER_CALL = 1000  # bounds one request's size


def multi_get(keys: list[bytes], namespace: str) -> dict[bytes, bytes]:
    """The values of the keys that exist (a blocking GCS call: in a worker thread, under the gate)."""
    from ray.experimental.internal_kv import _internal_kv_get, internal_kv_get_gcs_client

    client = internal_kv_get_gcs_client()
    many = getattr(client, "internal_kv_multi_get", None)
    if many is None:
        found = {key: _internal_kv_get(key, namespace=namespace) for key in keys}
        return {key: value for key, value in found.items() if value is not None}
    values: dict[bytes, bytes] = {}
    for start in range(0, len(keys), MAX_KEYS_PER_CALL):
        values.update(many(keys[start : start + MAX_KEYS_PER_CALL], namespace.encode()))
    return values
