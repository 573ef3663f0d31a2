"""The Grafana dashboard JSON is what the code builds, names the provisioned datasources (Prometheus,
and the archive's PostgreSQL for the row "The record"), and queries only metrics the service exports
(or recording rules that exist) and macros Grafana expands."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from faust.sensors.prometheus import FaustMetrics
from prometheus_client import CollectorRegistry

from deploy.grafana import dashboard, record
from services.runtime.metrics import Metrics
from services.runtime.settings import PROJECT_ROOT
from tests.support.grafana_sql import expand, sql_targets

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
    """(panel title, PromQL) of every Prometheus target; the SQL ones are the archive's."""
    for panel in panels():
        for target in panel.get("targets", []):
            if target["datasource"]["uid"] == dashboard.DATASOURCE_UID:
                yield panel["title"], target["expr"]


def provisioned(name: str) -> list[dict[str, Any]]:
    return yaml.safe_load((PROVISIONING / "datasources" / name).read_text())["datasources"]


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


def test_every_panel_and_query_names_a_provisioned_datasource() -> None:
    assert [ds["uid"] for ds in provisioned("prometheus.yml")] == [dashboard.DATASOURCE_UID]
    archive = [(ds["uid"], ds["type"]) for ds in provisioned("archive.yml")]
    assert archive == [(record.ARCHIVE_UID, record.ARCHIVE_TYPE)]
    queried = [p for p in panels() if p["type"] != "row"]
    assert queried
    for panel in queried:
        uid = panel["datasource"]["uid"]
        assert uid in {dashboard.DATASOURCE_UID, record.ARCHIVE_UID}, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]
            assert ("expr" if uid == dashboard.DATASOURCE_UID else "rawSql") in target, panel["title"]
    for variable in board()["templating"]["list"]:
        assert variable["datasource"]["uid"] == dashboard.DATASOURCE_UID, variable["name"]
    for annotation in board()["annotations"]["list"]:
        assert annotation["datasource"]["uid"] == record.ARCHIVE_UID, annotation["name"]


def test_the_archive_datasource_commits_no_secret() -> None:
    """Host, database, user, password and sslmode come from Grafana's environment when it reads the
    file: nothing in the repository connects to a real archive."""
    (archive,) = provisioned("archive.yml")
    settings = {
        "url": archive["url"],
        "user": archive["user"],
        "database": archive["jsonData"]["database"],
        "sslmode": archive["jsonData"]["sslmode"],
        "password": archive["secureJsonData"]["password"],
    }
    for name, value in settings.items():
        assert re.fullmatch(r"\$\{GRAFANA_ARCHIVE_[A-Z]+\}", value), f"{name}: {value!r}"
    assert "password" not in archive and "password" not in archive["jsonData"]


def test_the_record_row_reads_the_archive_through_grafanas_macros() -> None:
    targets = list(sql_targets(board(), record.ARCHIVE_UID))
    assert sorted(where for where, _ in targets) == [
        "annotation 'Alert episodes'",
        "panel 'Fragility history (archive)'",
        "panel 'Incidents on the map'",
        "panel 'Latest incidents'",
    ]
    start, end = datetime(2025, 5, 10, tzinfo=UTC), datetime(2025, 5, 11, tzinfo=UTC)
    for where, target in targets:
        assert target["rawQuery"] is True and target["editorMode"] == "code", where
        sql = target["rawSql"]
        assert "$__timeFilter(" in sql or "$__timeFrom()" in sql, f"{where}: not limited to the time range"
        assert "${ceasefire:regex}" in sql, f"{where}: ignores the ceasefire picked"
        expand(sql, start, end, ["in-pk-2025-05-10"])  # raises on a macro Grafana would expand and we do not
    formats = {where: target["format"] for where, target in targets}
    assert formats["panel 'Fragility history (archive)'"] == "time_series"
    assert {p["type"] for p in panels() if p.get("datasource", {}).get("uid") == record.ARCHIVE_UID} == {
        "geomap",
        "table",
        "timeseries",
    }


def test_grafanas_macros_expand_as_grafana_does() -> None:
    start, end = datetime(2025, 5, 10, 1, 2, 3, 456000, tzinfo=UTC), datetime(2025, 5, 10, 7, tzinfo=UTC)
    sql = "SELECT 1 WHERE $__timeFilter(t.at) AND $__timeFrom() < $__timeTo() AND c ~ '^${ceasefire:regex}$'"
    assert expand(sql, start, end, ["a.b", "c"]) == (
        "SELECT 1 WHERE t.at BETWEEN '2025-05-10T01:02:03Z' AND '2025-05-10T07:00:00Z'"
        " AND '2025-05-10T01:02:03Z' < '2025-05-10T07:00:00Z' AND c ~ '^(a\\.b|c)$'"
    )
    assert expand("c ~ '^${ceasefire:regex}$'", start, end, None) == "c ~ '^.*$'"
    for unknown in ("$__timeGroup(at, '5m')", "$ceasefire", "${ceasefire}"):
        with pytest.raises(ValueError, match="does not know"):
            expand(unknown, start, end, ["a"])


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
    firing = [p for p in panels() if any("_alerts_firing" in t.get("expr", "") for t in p.get("targets", []))]
    assert [p["type"] for p in firing] == ["table"]
