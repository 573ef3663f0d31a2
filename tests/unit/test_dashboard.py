"""The Grafana dashboard JSON is what the code builds, names the one datasource, and queries only
metrics the service exports (or recording rules that exist)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import yaml
from faust.sensors.prometheus import FaustMetrics
from prometheus_client import CollectorRegistry

from deploy.grafana import dashboard
from services.runtime.metrics import Metrics
from services.runtime.settings import PROJECT_ROOT

PROMETHEUS_DIR = PROJECT_ROOT / "deploy" / "prometheus"
PROVISIONING = PROJECT_ROOT / "deploy" / "grafana" / "provisioning"

# Gauges the scrape-time collector (services/runtime/collectors.py) builds; it needs a running app,
# so they are listed here. tests/e2e/test_dashboard_queries.py checks them against a real worker.
COLLECTED = frozenset(
    {
        "ceasefire_consumer_lag_records",
        "ceasefire_fragility_index",
        *(f"ceasefire_fragility_{name}_ratio" for name in dashboard.FRAGILITY_COMPONENTS),
        "ceasefire_seconds_since_last_violation",
        "ceasefire_incidents_open",
        "ceasefire_mutual_ratio",
        "ceasefire_corroborated_ratio",
        "ceasefire_alerts_firing",
        "ceasefire_rocksdb_cache_bytes",
        "ceasefire_held_reports",
    }
)
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created")}
PROMQL_WORDS = frozenset({"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"})


def sample_names(registry: CollectorRegistry) -> set[str]:
    """Names as they appear on /metrics (a counter family `x` is scraped as `x_total`)."""
    return {
        family.name + suffix
        for family in registry.collect()
        for suffix in SUFFIXES.get(family.type, ("",))
    }


def exported() -> frozenset[str]:
    """Every series name a worker's /metrics can carry: ours, the collector's, Faust's sensor."""
    ours = CollectorRegistry()
    Metrics.create(ours)
    faust = CollectorRegistry()
    FaustMetrics.create(faust, "ceasefire_faust")  # the prefix services/runtime/app.py passes
    return frozenset(sample_names(ours) | sample_names(faust) | COLLECTED)


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: what is left once strings, label matchers, ranges,
    grouping clauses, function calls, keywords and numbers are taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", text):
        if text[match.end() :].lstrip().startswith("(") or match.group().lower() in PROMQL_WORDS:
            continue
        names.add(match.group())
    return names


def board() -> dict[str, Any]:
    return json.loads(dashboard.OUTPUT.read_text())


def panels() -> Iterator[dict[str, Any]]:
    for panel in board()["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row carries its panels inside


def expressions() -> Iterator[tuple[str, str]]:
    for panel in panels():
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def recorded() -> set[str]:
    doc = yaml.safe_load((PROMETHEUS_DIR / "rules" / "recording.yml").read_text())
    return {rule["record"] for group in doc["groups"] for rule in group["rules"]}


def test_metric_names_are_read_out_of_promql() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (output, le) (rate(a_bucket{job="x", l=~"$v"}[$__rate_interval])))'
        ' / on (output) group_left b:rec:rate1m > bool 1e3 unless sum(c_total offset 5m) without (le)'
    )
    assert metric_names(expr) == {"a_bucket", "b:rec:rate1m", "c_total"}
    assert metric_names("up == 0") == {"up"}


def test_checked_in_json_is_what_the_code_builds() -> None:
    assert dashboard.OUTPUT.read_text() == dashboard.render(), "run `python -m deploy.grafana.dashboard`"
    assert dashboard.main(["--check"]) == 0


def test_check_fails_on_a_stale_file(tmp_path) -> None:
    stale = tmp_path / "ceasefire.json"
    stale.write_text(dashboard.render().replace("Fragility index", "Fragility"))
    assert dashboard.main(["--check", "--output", str(stale)]) == 1


def test_every_panel_and_query_names_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    assert [ds["uid"] for ds in provisioned["datasources"]] == [dashboard.DATASOURCE_UID]
    queried = [p for p in panels() if p["type"] != "row"]
    assert queried
    for panel in queried:
        assert panel["datasource"]["uid"] == dashboard.DATASOURCE_UID, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == dashboard.DATASOURCE_UID, panel["title"]
    for variable in board()["templating"]["list"]:
        assert variable["datasource"]["uid"] == dashboard.DATASOURCE_UID, variable["name"]


def test_no_panel_queries_a_metric_the_service_does_not_export() -> None:
    known, rules = exported(), recorded()
    for title, expr in expressions():
        names = metric_names(expr)
        assert names, f"{title}: no metric in {expr!r}"
        for name in names:
            if ":" in name:
                assert name in rules, f"{title}: recording rule {name} is not in recording.yml"
            else:
                assert name in known, f"{title}: {name} is not exported by the service"
    for variable in board()["templating"]["list"]:
        assert metric_names(variable["query"].removeprefix("label_values")) <= known | {"ceasefire"}


def test_rules_query_only_what_the_service_exports() -> None:
    known, rules = exported(), recorded()
    for path in sorted((PROMETHEUS_DIR / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                unknown = {n for n in metric_names(rule["expr"]) if n not in known | rules | {"up"}}
                assert not unknown, f"{path.name} {rule.get('record') or rule['alert']}: {unknown}"


def test_the_dashboard_shows_what_issue_5_asks_for() -> None:
    used = {name for _, expr in expressions() for name in metric_names(expr)}
    wanted = {
        "ceasefire_fragility_index",
        *(f"ceasefire_fragility_{name}_ratio" for name in dashboard.FRAGILITY_COMPONENTS),
        "ceasefire:incidents:increase1h",
        "ceasefire_alerts_firing",
        "ceasefire:reports:rate1m",
        "ceasefire_end_to_end_latency_seconds_bucket",
        "ceasefire_consumer_lag_records",
    }
    assert wanted <= used, wanted - used
    quantiles = {q for _, expr in expressions() for q in re.findall(r"histogram_quantile\(([\d.]+)", expr)}
    assert quantiles == {"0.5", "0.99"}
    firing = [p for p in panels() if any("_alerts_firing" in t["expr"] for t in p.get("targets", []))]
    assert [p["type"] for p in firing] == ["table"]
