"""The direct route's pieces that need no cluster: route tokens, the in-flight gauge the replica
reports to the autoscaler, the policy's arithmetic, registry entries and the SDK's switch."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from launch.direct_route import DirectRouter, is_enabled
from launch.v1 import inference_pb2 as ipb
from launch.v1 import model_endpoint_pb2 as epb

from launch_server.replica import autoscaling
from launch_server.replica.autoscaling import DIRECT_ONGOING_METRIC, desired_replicas, direct_aware_policy
from launch_server.replica.listener import InflightGauge
from launch_server.replica.registry import FORGET_AFTER_S, STALE_AFTER_S, expired_keys, parse_entries
from launch_server.wire.route_tokens import TokenCheck, endpoint_key, mint

SECRET = b"s" * 32


def check_for(endpoint_id: str) -> TokenCheck:
    return TokenCheck(endpoint_key(SECRET, endpoint_id), endpoint_id)


def test_a_minted_token_is_accepted_until_it_expires() -> None:
    token, expires = mint(SECRET, "ep1", ttl_s=60, now=1_000)
    assert expires == 1_060 and token.startswith("lr2.ep1.server.1060.")
    check = check_for("ep1")
    assert check.why_not(token, now=1_030) is None
    assert check.why_not(token, now=1_030) is None  # remembered: no second HMAC
    assert "expired" in (check.why_not(token, now=1_060) or "")
    assert "expired" in (check.why_not(token, now=1_061) or "")  # forgotten once expired, still refused


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "not a route token"),
        ("lk_abc_secret", "not a route token"),
        ("lr1.ep1.2000.00", "not a route token"),  # the old form names no key: nothing could revoke it
        ("lr2.ep1.k1.notanumber.00", "malformed"),
        ("lr2.ep2.k1.2000.00", "another endpoint"),
    ],
)
def test_malformed_and_foreign_tokens_are_refused(token: str, reason: str) -> None:
    assert reason in (check_for("ep1").why_not(token, now=1_000) or "")


def test_tampering_or_another_secret_breaks_the_signature() -> None:
    token, _ = mint(SECRET, "ep1", ttl_s=60, now=1_000)
    prefix, endpoint_id, key_id, expires, signature = token.split(".")
    longer = f"{prefix}.{endpoint_id}.{key_id}.{int(expires) + 3600}.{signature}"
    assert "signature" in (check_for("ep1").why_not(longer, now=1_000) or "")
    other_key = f"{prefix}.{endpoint_id}.k2.{expires}.{signature}"
    assert "signature" in (check_for("ep1").why_not(other_key, now=1_000) or "")
    assert "signature" in (check_for("ep1").why_not(longer, now=1_000) or "")
    other, _ = mint(b"x" * 32, "ep1", ttl_s=60, now=1_000)
    assert "signature" in (check_for("ep1").why_not(other, now=1_000) or "")


def test_endpoint_keys_differ_per_endpoint() -> None:
    assert endpoint_key(SECRET, "ep1") != endpoint_key(SECRET, "ep2")
    assert endpoint_key(SECRET, "ep1") == endpoint_key(SECRET, "ep1")


def test_gauge_reports_the_time_weighted_average() -> None:
    now = [0.0]
    gauge = InflightGauge(clock=lambda: now[0])
    gauge.change(+1)  # one request for the whole second
    now[0] = 0.5
    gauge.change(+1)  # a second one for the last half
    now[0] = 1.0
    assert gauge.read_average() == pytest.approx(1.5)
    gauge.change(-1)
    gauge.change(-1)
    now[0] = 2.0
    assert gauge.read_average() == pytest.approx(0.0)
    assert gauge.current == 0


def test_policy_adds_direct_requests_to_serves_count(monkeypatch: pytest.MonkeyPatch) -> None:
    assert desired_replicas(current=2, target=2, serve_requests=2, direct_requests=6, target_per_replica=2) == 4
    assert desired_replicas(current=0, target=1, serve_requests=0, direct_requests=0, target_per_replica=2) == 1
    written: list[tuple[str, int]] = []
    monkeypatch.setattr(autoscaling, "publish_desired", lambda app, desired, now: written.append((app, desired)))
    ctx = SimpleNamespace(
        app_name="launch-e1",
        aggregated_metrics={DIRECT_ONGOING_METRIC: {"r1": 3.0, "r2": 5.0}},
        current_num_replicas=2,
        target_num_replicas=2,
        total_num_requests=0.0,
        capacity_adjusted_min_replicas=1,
        capacity_adjusted_max_replicas=3,
        policy_state={"serve's own": 1},
        config=SimpleNamespace(get_target_ongoing_requests=lambda: 2.0),
    )
    desired, state = direct_aware_policy(ctx)
    assert desired == 4.0
    assert written == [("launch-e1", 3)]  # within max_workers
    assert state["serve's own"] == 1 and state["published"] == 3  # Serve's keys are kept
    ctx.policy_state = state
    ctx.aggregated_metrics = None  # no replica has reported yet: Serve's own count alone
    ctx.total_num_requests = 1.0
    assert direct_aware_policy(ctx)[0] == 0.5
    assert written == [("launch-e1", 3)]  # changed to 1 within DESIRED_MIN_GAP_S: written later


def test_desired_workers_are_written_on_change_and_refreshed() -> None:
    assert autoscaling.bounded_desired(0.2, 0, 5) == 1
    assert autoscaling.bounded_desired(0.0, 0, 5) == 0
    assert autoscaling.bounded_desired(7.0, 0, 5) == 5
    assert autoscaling.publish_due({}, 1, 100.0)
    state = {"published": 1, "published_at": 100.0}
    assert not autoscaling.publish_due(state, 2, 100.5)
    assert autoscaling.publish_due(state, 2, 101.0)
    assert not autoscaling.publish_due(state, 1, 100.0 + autoscaling.DESIRED_REFRESH_S - 1)
    assert autoscaling.publish_due(state, 1, 100.0 + autoscaling.DESIRED_REFRESH_S)
    value = json.dumps({"desired": 3, "written": 100.0}).encode()
    assert autoscaling.parse_desired(value, 110.0, 30.0) == 3
    assert autoscaling.parse_desired(value, 131.0, 30.0) is None  # stale: the app is gone
    for junk in (b"", b"[]", b'{"desired": true, "written": 1}', b'{"desired": -1, "written": 1}', b"{"):
        assert autoscaling.parse_desired(junk, 1.0, 30.0) is None


def test_registry_keeps_fresh_entries_only() -> None:
    def entry(address: str, heartbeat: float) -> bytes:
        return json.dumps({"address": address, "heartbeat": heartbeat}).encode()

    routes = parse_entries(
        {
            b"app/r2": entry("127.0.0.1:2", 100.0),
            b"app/r1": entry("127.0.0.1:1", 99.0),
            b"app/old": entry("127.0.0.1:3", 100.0 - STALE_AFTER_S - 1),
            b"app/junk": b"not json",
            b"app/none": None,
        },
        now=100.0,
    )
    assert [(r.replica_id, r.address) for r in routes] == [("r1", "127.0.0.1:1"), ("r2", "127.0.0.1:2")]
    forgotten = expired_keys(
        {b"app/new": entry("a", 100.0), b"app/dead": entry("b", 100.0 - FORGET_AFTER_S - 1), b"app/junk": b"x"},
        now=100.0,
    )
    assert sorted(forgotten) == [b"app/dead", b"app/junk"]


def test_sdk_switch() -> None:
    assert is_enabled(None, {}) is True
    assert is_enabled(None, {"LAUNCH_DIRECT_ROUTE": "0"}) is False
    assert is_enabled(True, {"LAUNCH_DIRECT_ROUTE": "0"}) is True
    assert is_enabled(False, {}) is False


def test_a_tls_client_skips_plaintext_replicas() -> None:
    """Over TLS to the server, the SDK sends nothing to replicas that speak plaintext."""
    plaintext = epb.GetModelEndpointRouteResponse(
        replica_addresses=["127.0.0.1:1"], route_token="lr1.x.1.y", refresh_after_seconds=60
    )
    router = DirectRouter(lambda name, timeout: plaintext, require_tls=True)
    request = ipb.PredictRequest(endpoint_name="any", input=ipb.RequestInput(args_json="{}"))
    assert router.predict(request, timeout=5) is None  # "use the server"
    assert not router._replicas  # noqa: SLF001 - no channel was even opened
