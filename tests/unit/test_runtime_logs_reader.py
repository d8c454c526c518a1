"""The server's side of runtime logs (serving/runtime_logs.py) over an in-memory stand-in for
Ray's GCS key-value store: lines oldest first across replicas, a gap in a replica's chunks said
out loud, messages bounded, and the sweep forgetting replicas gone quiet for RETAIN_S while it
keeps those that still write."""

from __future__ import annotations

import asyncio

import pytest
from ray.experimental import internal_kv

from launch_server.observability.log_chunks import LOGS_NAMESPACE, RETAIN_S, LogLine, chunk_key, encode_chunk
from launch_server.serving import runtime_logs
from launch_server.serving.runtime_logs import MAX_MESSAGE_LINES, RuntimeLogs, _in_messages


@pytest.fixture
def kv(monkeypatch: pytest.MonkeyPatch) -> dict[bytes, bytes]:
    store: dict[bytes, bytes] = {}

    def put(key: bytes, value: bytes, overwrite: bool = True, namespace: str = "") -> None:
        assert namespace == LOGS_NAMESPACE
        store[key] = value

    def get(key: bytes, namespace: str = "") -> bytes | None:
        return store.get(key)

    def listed(prefix: bytes, namespace: str = "") -> list[bytes]:
        return [key for key in store if key.startswith(prefix)]

    def delete(key: bytes, del_by_prefix: bool = False, namespace: str = "") -> None:
        for k in [k for k in store if (k.startswith(key) if del_by_prefix else k == key)]:
            del store[k]

    class Client:
        """The GCS client's one-call read (serving/gcs_kv.multi_get), over the same store."""

        def internal_kv_multi_get(self, keys: list[bytes], namespace: bytes | None = None) -> dict[bytes, bytes]:
            assert namespace == LOGS_NAMESPACE.encode()
            return {key: store[key] for key in keys if key in store}

    # Whatever cluster this test process may have joined before, the store here is the only one.
    monkeypatch.setattr(internal_kv, "internal_kv_get_gcs_client", Client)
    monkeypatch.setattr(internal_kv, "_internal_kv_put", put)
    monkeypatch.setattr(internal_kv, "_internal_kv_get", get)
    monkeypatch.setattr(internal_kv, "_internal_kv_list", listed)
    monkeypatch.setattr(internal_kv, "_internal_kv_del", delete)
    return store


def read_all(logs: RuntimeLogs, app: str, since: float = 0.0) -> list[LogLine]:
    async def collect() -> list[LogLine]:
        return [line async for message in logs.lines(app, since, follow=False) for line in message]

    return asyncio.run(collect())


def test_lines_come_oldest_first_across_replicas_and_only_the_apps_own(kv: dict[bytes, bytes]) -> None:
    kv[chunk_key("launch-e1", "r1", 1)] = encode_chunk([(10.0, "stdout", "a"), (30.0, "stdout", "c")], 0, 31.0)
    kv[chunk_key("launch-e1", "r2", 1)] = encode_chunk([(20.0, "stderr", "b")], 0, 21.0)
    kv[chunk_key("launch-e10", "r3", 1)] = encode_chunk([(15.0, "stdout", "not mine")], 0, 16.0)
    kv[chunk_key("launch-e1", "r2", 2)] = b"{junk"
    logs = RuntimeLogs("launch")
    assert [(ln.replica, ln.text) for ln in read_all(logs, "launch-e1")] == [("r1", "a"), ("r2", "b"), ("r1", "c")]
    assert [ln.text for ln in read_all(logs, "launch-e1", since=15.0)] == ["b", "c"]


def test_a_gap_in_a_replicas_chunks_is_said(kv: dict[bytes, bytes]) -> None:
    kv[chunk_key("launch-e1", "r1", 1)] = encode_chunk([(10.0, "stdout", "a")], 0, 11.0)
    kv[chunk_key("launch-e1", "r1", 4)] = encode_chunk([(40.0, "stdout", "d")], 0, 41.0)
    texts = [ln.text for ln in read_all(RuntimeLogs("launch"), "launch-e1")]
    assert "a" in texts and "d" in texts
    assert any("2 chunks of lines were gone" in t for t in texts)


def test_messages_are_bounded_in_lines_and_bytes() -> None:
    many = [LogLine(float(i), "r", "stdout", "x") for i in range(MAX_MESSAGE_LINES * 2 + 1)]
    assert [len(m) for m in _in_messages(many)] == [MAX_MESSAGE_LINES, MAX_MESSAGE_LINES, 1]
    wide = [LogLine(float(i), "r", "stdout", "y" * 16_000) for i in range(100)]
    assert all(sum(len(ln.text) for ln in m) <= runtime_logs.MAX_MESSAGE_BYTES for m in _in_messages(wide))
    assert sum(len(m) for m in _in_messages(wide)) == 100


def test_the_sweep_forgets_quiet_replicas_only(kv: dict[bytes, bytes]) -> None:
    now = 100_000.0
    kv[chunk_key("launch-e1", "gone", 1)] = encode_chunk([(1.0, "stdout", "old")], 0, now - RETAIN_S - 5)
    kv[chunk_key("launch-e1", "gone", 2)] = encode_chunk([], 0, now - RETAIN_S - 1)
    kv[chunk_key("launch-e1", "quiet", 1)] = encode_chunk([(1.0, "stdout", "startup")], 0, now - RETAIN_S - 5)
    kv[chunk_key("launch-e1", "quiet", 2)] = encode_chunk([], 0, now - 60)  # its keep-alive
    assert RuntimeLogs("launch").sweep_once(now) == 2
    assert sorted(kv) == [chunk_key("launch-e1", "quiet", 1), chunk_key("launch-e1", "quiet", 2)]
    runtime_logs.drop_application("launch-e1")
    assert kv == {}


def test_too_many_followers_are_refused() -> None:
    logs = RuntimeLogs("launch", max_followers=1)
    logs._followers = 1  # noqa: SLF001 - one follows already

    async def follow() -> None:
        async for _ in logs.lines("launch-e1", 0.0, follow=True):
            pass

    from launch_server.domain.errors import ResourceExhausted

    with pytest.raises(ResourceExhausted):
        asyncio.run(follow())
