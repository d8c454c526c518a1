"""The Grafana dashboard (deploy/grafana/launch-dashboard.json) against a real server: every
metric its panels and template variables query is in a scrape of the server's metrics port once a
sync, an async, a streaming and a batched endpoint have served a few requests, and a real
Prometheus scraping that port parses every query (Grafana's variables filled in) and answers each
with data. The JSON's own shape (panel ids, datasources, variables) is checked without a server.
Real server, Ray cluster, replicas; SQLite."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import launch
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_endpoints import ENV, SMALL, args, client_for, wait_status
from tests.integration.test_streaming_server import make_counter
from tests.prometheus import Prometheus, start_prometheus
from tests.server_fixtures import serving_server_fixture
from tests.server_process import free_port
from tests.support import REPO, ServerHandle

DASHBOARD = REPO / "deploy" / "grafana" / "launch-dashboard.json"
METRICS_PORT = free_port()
server = serving_server_fixture("dashboard", "g{dir}", LAUNCH_METRICS_BIND=f"127.0.0.1:{METRICS_PORT}")
ONE = {**SMALL, "min_workers": 1, "max_workers": 1}
REQUESTS = 3
# Families the dashboard must query whatever else it shows (prometheus_client's family names).
REQUIRED_FAMILIES = {"launch_requests", "launch_request_duration_seconds", "launch_workers", "launch_tasks_queued"}
REQUEST_RATE_TITLE = "Request rate by endpoint and outcome"
# Grafana's built-in duration variables, and what they become in a query here.
BUILTIN_DURATIONS = {"__rate_interval", "__interval", "__range"}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
METRIC = re.compile(r"(?<![\w:])(launch_[A-Za-z0-9_:]+)")
MATCHER = re.compile(r'([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*$", re.S)


# ---- reading the dashboard --------------------------------------------------------------------


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows' nested (collapsed) panels included."""
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query", "")
    return query.get("query", "") if isinstance(query, dict) else query


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, query) for every panel target's expr and every query variable's query."""
    found = [
        (f"panel {panel['id']} {panel.get('title', '')!r} target {target.get('refId')}", target["expr"])
        for panel in all_panels(dashboard)
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    found += [
        (f"variable {variable['name']}", variable_query(variable))
        for variable in dashboard["templating"]["list"]
        if variable.get("type") == "query"
    ]
    return found


def metric_names(query: str) -> set[str]:
    """The launch_* metric (sample) names a PromQL query or label_values() names, strings left out."""
    return set(METRIC.findall(STRING.sub('""', query)))


def family_of(name: str) -> str:
    """The family prometheus_client's parser reports a sample name under (counters drop _total,
    histograms their _bucket/_sum/_count)."""
    for suffix in ("_total", "_bucket", "_count", "_sum"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def queried_names(dashboard: dict[str, Any]) -> set[str]:
    return {name for _, query in queries(dashboard) for name in metric_names(query)}


def as_promql(query: str) -> str:
    """The query as Prometheus would get it from Grafana with every variable at "All" (`.*`) and
    every built-in interval at 1m; label_values(m, l) becomes the PromQL that lists l."""
    query = VARIABLE.sub(
        lambda m: "1m" if (m.group(1) or m.group(2) or m.group(3)) in BUILTIN_DURATIONS else ".*", query
    )
    label_values = LABEL_VALUES.match(query)
    if label_values:
        selector, label = label_values.groups()
        return f"count by ({label}) ({selector})"
    return query


# ---- the JSON itself (no server) --------------------------------------------------------------


def test_the_dashboard_is_a_well_formed_grafana_model() -> None:
    text = DASHBOARD.read_text()
    dashboard = json.loads(text)
    assert text == json.dumps(dashboard, indent=2) + "\n", "not 2-space-indented JSON as json.dumps writes it"
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["uid"] and dashboard["title"]
    panels = all_panels(dashboard)
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(ids)}"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert {"owner", "endpoint"} <= variables.keys()
    sources = [v for v in variables.values() if v["type"] == "datasource"]
    assert len(sources) == 1 and sources[0]["query"] == "prometheus", sources
    source_ref = {"type": "prometheus", "uid": "${" + sources[0]["name"] + "}"}
    for name in ("owner", "endpoint"):
        assert "label_values(launch_workers" in variable_query(variables[name]), variables[name]
        assert variables[name]["datasource"] == source_ref
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel.get("datasource") == source_ref, f"panel {panel['id']} {panel['title']!r} has no datasource"
        targets = panel.get("targets", [])
        assert targets, f"panel {panel['title']!r} queries nothing"
        refs = [t["refId"] for t in targets]
        assert len(refs) == len(set(refs)), panel["title"]
        for t in targets:
            assert t.get("datasource", source_ref) == source_ref, panel["title"]
            assert t["expr"].strip(), panel["title"]


def test_every_variable_a_query_uses_is_defined_and_matched_as_a_regex() -> None:
    """A multi-value or "All" variable expands to a regex, so it belongs only in =~ / !~ matchers."""
    dashboard = load_dashboard()
    defined = {v["name"] for v in dashboard["templating"]["list"]}
    for where, query in queries(dashboard):
        for m in VARIABLE.finditer(query):
            name = m.group(1) or m.group(2) or m.group(3)
            assert name in defined | BUILTIN_DURATIONS, f"{where}: ${name} is not a dashboard variable"
        for m in VARIABLE.finditer(MATCHER.sub("", query)):
            name = m.group(1) or m.group(2) or m.group(3)
            assert name in BUILTIN_DURATIONS, f"{where}: ${name} outside a label matcher"
        for label, op, value in MATCHER.findall(query):
            if VARIABLE.search(value):
                assert op in ("=~", "!~"), f'{where}: {label}{op}"{value}" needs =~ for a multi-value variable'


def test_the_dashboard_queries_the_core_metrics() -> None:
    names = queried_names(load_dashboard())
    assert names, "the dashboard queries no launch_* metric"
    families = {family_of(name) for name in names}
    assert REQUIRED_FAMILIES <= families, f"missing {REQUIRED_FAMILIES - families}"
    panel_titles = {panel.get("title") for panel in all_panels(load_dashboard())}
    assert REQUEST_RATE_TITLE in panel_titles


# ---- against a real server --------------------------------------------------------------------


def make_plain() -> Callable:
    def predict(x: int) -> dict:
        return {"x": x}

    return predict


def make_batch_fn() -> Callable:
    @launch.batched(max_batch_size=4)
    def predict(inputs: list[dict]) -> list[dict]:
        return [{"x": item.get("x", 0), "batch": len(inputs)} for item in inputs]

    return predict


@pytest.fixture(scope="module")
def traffic(server: ServerHandle) -> Iterator[dict[str, launch.Endpoint]]:
    """One endpoint of each kind whose figures the dashboard shows, each with a few requests."""
    client = client_for(server)
    plain = client.create_model_bundle("plain", ENV, predict_fn_or_cls=make_plain(), requirements=[])
    counter = client.create_model_bundle("counter", ENV, predict_fn_or_cls=make_counter(), requirements=[])
    batch = client.create_model_bundle("batch", ENV, predict_fn_or_cls=make_batch_fn(), requirements=[])
    made = {
        "sync": client.create_model_endpoint("dash-sync", plain, **ONE),
        "async": client.create_model_endpoint("dash-async", plain, **ONE, endpoint_type="async"),
        "stream": client.create_model_endpoint("dash-stream", counter, **ONE, endpoint_type="streaming"),
        "batch": client.create_model_endpoint("dash-batch", batch, **ONE, per_worker=8),
    }
    try:
        for ep in made.values():
            wait_status(ep, "READY", timeout=120)
        for i in range(REQUESTS):
            assert made["sync"].predict(args(x=i)).status == "SUCCESS"
            assert made["batch"].predict(args(x=i)).status == "SUCCESS"
            with made["stream"].predict(args(n=3), timeout=60) as stream:
                assert [r.result for r in stream] == [f'{{"i": {k}}}' for k in range(3)]
        futures = [made["async"].predict(args(x=i)) for i in range(REQUESTS)]
        assert [f.get(timeout=60).status for f in futures] == ["SUCCESS"] * REQUESTS
        yield made
    finally:
        for ep in made.values():
            client.delete_model_endpoint(ep)


def scraped_names() -> dict[str, str]:
    """Sample name -> family name for every sample the metrics port serves now."""
    with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {s.name: family.name for family in text_string_to_metric_families(text) for s in family.samples}


def test_every_metric_the_dashboard_queries_is_in_a_scrape(traffic: dict) -> None:
    wanted = queried_names(load_dashboard())
    assert wanted
    deadline = time.monotonic() + 45  # replicas write every 2 s, the server reads every 2 s
    while True:
        present = scraped_names()
        missing = wanted - present.keys()
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1)
    launch_families = sorted({f for f in present.values() if f.startswith("launch_")})
    assert not missing, f"the dashboard queries {sorted(missing)}, not in the scrape (families: {launch_families})"
    for name in wanted:
        assert present[name] == family_of(name), (name, present[name])


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, traffic: dict) -> Iterator[Prometheus]:
    instance = start_prometheus(tmp_path_factory.mktemp("prometheus"), [f"127.0.0.1:{METRICS_PORT}"])
    yield instance
    instance.stop()


def instant_query(prometheus: Prometheus, promql: str) -> dict[str, Any]:
    """Prometheus's whole answer, an error included (HTTP 400 for a query that does not parse)."""
    address = f"{prometheus.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(address, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as err:
        return json.loads(err.read() or b"{}") | {"http_status": err.code}


def test_prometheus_parses_and_answers_every_query(prometheus: Prometheus) -> None:
    """Every query parses; each answers with data once Prometheus has a few scrapes (a selector
    with a mistyped label value, or grouping that drops every series, would stay empty)."""
    wanted = {where: as_promql(query) for where, query in queries(load_dashboard())}
    for where, promql in wanted.items():
        answer = instant_query(prometheus, promql)
        assert answer.get("status") == "success", f"{where}: {promql}\n{answer}"
    rate_panels = [w for w in wanted if REQUEST_RATE_TITLE in w]
    assert rate_panels
    empty = set(wanted)
    deadline = time.monotonic() + 60
    while empty and time.monotonic() < deadline:
        empty = {where for where in empty if not instant_query(prometheus, wanted[where])["data"]["result"]}
        if empty:
            time.sleep(1)
    assert not empty, "no data: " + "; ".join(f"{where}: {wanted[where]}" for where in sorted(empty))
    result = instant_query(prometheus, wanted[rate_panels[0]])["data"]["result"]
    assert {s["metric"]["endpoint"] for s in result} >= {"dash-sync", "dash-async", "dash-stream", "dash-batch"}
