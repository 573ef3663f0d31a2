"""The ceasefire dashboard as code (grafana-foundation-sdk), exported to JSON for Grafana's file provider.

    python -m deploy.grafana.dashboard           # writes deploy/grafana/dashboards/ceasefire.json
    python -m deploy.grafana.dashboard --check   # exits 1 if the checked-in JSON is stale

Why code: every panel shares one datasource uid and one label filter, and the tests read the very
expressions the JSON carries (no panel may query a metric the service does not export; the e2e test
runs each one against a real Prometheus scraping a real worker). The row "The record" and the alert
episodes' annotations read the archive's PostgreSQL instead (record.py; their e2e test runs each SQL
query against a real PostgreSQL the archive filled).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    DataTransformerConfig,
    Threshold,
    ThresholdsMode,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from deploy.grafana.record import alert_episodes, record_row

DASHBOARD_UID = "ceasefire-monitor"
DATASOURCE_UID = "ceasefire-prometheus"  # deploy/grafana/provisioning/datasources/prometheus.yml
DATASOURCE = DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
OUTPUT = Path(__file__).resolve().parent / "dashboards" / "ceasefire.json"

# Raw series are filtered on the scrape job and the ceasefire(s) picked at the top of the dashboard;
# recording rules (deploy/prometheus/rules/recording.yml) have already summed the job label away.
JOB = 'job="ceasefire"'
PICKED = f'{JOB}, ceasefire=~"$ceasefire"'
RECORDED_PICKED = 'ceasefire=~"$ceasefire"'

# The fragility index's components, as exported by the alert stage (each 0–1).
FRAGILITY_COMPONENTS = ("intensity", "trend", "severity", "casualties", "reciprocity", "spread", "recency")


def query(expr: str, legend: str = "", ref_id: str = "A", *, instant: bool = False) -> prometheus.Dataquery:
    built = prometheus.Dataquery().expr(expr).ref_id(ref_id).datasource(DATASOURCE)
    if instant:
        return built.instant().format(PromQueryFormat.TABLE)
    return built.range().legend_format(legend)


def thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=value, color=color) for value, color in steps])
    )


def legend_table(*calcs: str) -> common_builders.VizLegendOptions:
    return (
        common_builders.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.TABLE)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
        .calcs(list(calcs))
    )


def last_value() -> common_builders.ReduceDataOptions:
    return common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def series(title: str, description: str, unit: str, *targets: prometheus.Dataquery) -> timeseries.Panel:
    """A time-series panel on the shared datasource."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .height(8)
        .span(12)
        .line_width(1)
        .fill_opacity(10)
        .legend(legend_table("lastNotNull", "max"))
    )
    for target in targets:
        panel = panel.with_target(target)
    return panel


def fragility_row() -> list[dash.Panel | dash.Row]:
    index = series(
        "Fragility index",
        "0 calm – 100 breaking down, per ceasefire; the pipeline alerts at 75 held for 10 minutes.",
        "none",
        query(f"max by (ceasefire) (ceasefire_fragility_index{{{PICKED}}})", "{{ceasefire}}"),
    ).min(0).max(100).thresholds(thresholds((None, "green"), (50, "orange"), (75, "red")))
    components = series(
        "Fragility components",
        "What the index is made of, each 0–1: intensity, trend, severity, casualties, reciprocity "
        "(both parties accusing), spread (sectors) and recency.",
        "percentunit",
        *(
            query(
                f"max by (ceasefire) (ceasefire_fragility_{name}_ratio{{{PICKED}}})",
                f"{{{{ceasefire}}}} {name}",
                ref_id=chr(ord("A") + i),
            )
            for i, name in enumerate(FRAGILITY_COMPONENTS)
        ),
    ).min(0).max(1)
    quiet = (
        stat.Panel()
        .title("Since the last violation")
        .reduce_options(last_value())
        .graph_mode(common.BigValueGraphMode.AREA)
        .description("Event time since the newest violation report of each ceasefire.")
        .datasource(DATASOURCE)
        .unit("s")
        .height(4)
        .span(12)
        .with_target(
            query(f"min by (ceasefire) (ceasefire_seconds_since_last_violation{{{PICKED}}})", "{{ceasefire}}")
        )
    )
    shares = (
        stat.Panel()
        .title("Mutual and corroborated incidents")
        .reduce_options(last_value())
        .graph_mode(common.BigValueGraphMode.AREA)
        .description("Share of open incidents both parties report, and share confirmed by a neutral source.")
        .datasource(DATASOURCE)
        .unit("percentunit")
        .height(4)
        .span(12)
        .with_target(
            query(f"max by (ceasefire) (ceasefire_mutual_ratio{{{PICKED}}})", "{{ceasefire}} mutual")
        )
        .with_target(
            query(
                f"max by (ceasefire) (ceasefire_corroborated_ratio{{{PICKED}}})",
                "{{ceasefire}} corroborated",
                ref_id="B",
            )
        )
    )
    return [dash.Row("Fragility"), index, components, quiet, shares]


def incidents_row() -> list[dash.Panel | dash.Row]:
    per_hour = (
        series(
            "Incidents per hour by sector and severity",
            "New incidents in the last hour (recording rule ceasefire:incidents:increase1h).",
            "short",
            query(
                f"sum by (sector, severity) (ceasefire:incidents:increase1h{{{RECORDED_PICKED}}})",
                "{{sector}} {{severity}}",
            ),
        )
        .draw_style(common.GraphDrawStyle.BARS)
        .stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
        .fill_opacity(60)
    )
    open_now = series(
        "Open incidents by status",
        "Incidents not yet closed, by status (claimed, mutual, corroborated, merged).",
        "short",
        query(f"sum by (status) (ceasefire_incidents_open{{{PICKED}}})", "{{status}}"),
    )
    return [dash.Row("Incidents"), per_hour, open_now]


def alerts_row() -> list[dash.Panel | dash.Row]:
    firing = (
        table.Panel()
        .title("Firing alerts")
        .show_header(True)
        .description("Alerts firing now, per ceasefire, rule and severity (from ceasefire.alerts.v1).")
        .datasource(DATASOURCE)
        .height(8)
        .span(12)
        .with_target(
            query(
                f"sum by (ceasefire, alertname, severity) (ceasefire_alerts_firing{{{PICKED}}}) > 0",
                instant=True,
            )
        )
        .with_transformation(
            DataTransformerConfig(
                id_val="organize",
                options={"excludeByName": {"Time": True}, "renameByName": {"Value": "firing"}},
            )
        )
    )
    published = series(
        "Alert records published",
        "Alert records per second on ceasefire.alerts.v1, by rule and status (firing / resolved).",
        "ops",
        query(
            f"sum by (alertname, status) (rate(ceasefire_alerts_total{{{JOB}}}[$__rate_interval]))",
            "{{alertname}} {{status}}",
        ),
    )
    return [dash.Row("Alerts"), firing, published]


def pipeline_row() -> list[dash.Panel | dash.Row]:
    reports = series(
        "Reports per second by outcome",
        "Reports read from ceasefire.reports.v1: accepted, dropped as duplicates, or dead-lettered "
        "(recording rule ceasefire:reports:rate1m).",
        "ops",
        query("ceasefire:reports:rate1m", "{{outcome}}"),
    )
    dead = series(
        "Dead letters by reason",
        "Why reports were refused, per second.",
        "ops",
        query(
            "sum by (reason) "
            f'(rate(ceasefire_reports_total{{{JOB}, outcome="dead_lettered"}}[$__rate_interval]))',
            "{{reason}}",
        ),
    )
    buckets = f"ceasefire_end_to_end_latency_seconds_bucket{{{JOB}}}[$__rate_interval]"
    latency = series(
        "End-to-end latency",
        "From a report's ingestion to the incident or alert it changed being published.",
        "s",
        query(f"histogram_quantile(0.5, sum by (output, le) (rate({buckets})))", "p50 {{output}}"),
        query(
            f"histogram_quantile(0.99, sum by (output, le) (rate({buckets})))", "p99 {{output}}", ref_id="B"
        ),
    )
    lag = series(
        "Consumer lag",
        "Records not yet processed and committed, per source topic (all partitions, all workers).",
        "short",
        query(f"sum by (topic) (ceasefire_consumer_lag_records{{{JOB}}})", "{{topic}}"),
    )
    pauses = f"ceasefire_gc_pause_seconds_bucket{{{JOB}}}[$__rate_interval]"
    gc_pauses = series(
        "Garbage-collection pauses",
        "Longest pauses of the workers' garbage collector, by generation: each stops every stage of a "
        "worker at once, so a latency spike that lines up with a generation-2 pause came from it.",
        "s",
        query(f"histogram_quantile(0.99, sum by (generation, le) (rate({pauses})))", "p99 gen {{generation}}"),
    )
    rocksdb = series(
        "RocksDB cache per worker",
        "Each worker's one RocksDB cache in use: blocks read, and the memtables charged to it. Bounded by "
        "CEASEFIRE_ROCKSDB_BLOCK_CACHE_MB whatever number of table partitions the worker owns.",
        "bytes",
        query(f"ceasefire_rocksdb_cache_bytes{{{JOB}}}", "{{instance}}"),
    )
    faults = series(
        "Records stages gave up on, and re-deliveries",
        "Records a stage after validation could not process (its logic raised, or the record did not "
        "decode): dead-lettered on ceasefire.stages.v1.dlq, a defect of ours to look at (alert "
        "CeasefireStageDeadLetters). Re-deliveries: records read again after a crash or rebalance, "
        "recognised by their origin and not booked twice.",
        "short",
        query(
            f"sum by (stage) (increase(ceasefire_record_faults_total{{{JOB}}}[$__rate_interval])"
            f" + increase(ceasefire_undecodable_total{{{JOB}}}[$__rate_interval]))",
            "dead-lettered by {{stage}}",
        ),
        query(
            f"sum by (stage) (increase(ceasefire_redeliveries_total{{{JOB}}}[$__rate_interval]))",
            "re-delivered to {{stage}}",
            ref_id="B",
        ),
    )
    event_time = series(
        "Event time: held reports, idle partitions, late reports",
        "Reports correlate holds until every ingest partition has passed their event time; ingest partitions "
        "idle for a ceasefire (caught up and silent CEASEFIRE_IDLE_SECONDS), left out of its low watermark; "
        "reports correlated later than the allowed lateness (docs/event-time.md).",
        "short",
        query(f"sum by (ceasefire) (ceasefire_held_reports{{{JOB}}})", "held {{ceasefire}}"),
        query(f"sum by (ceasefire) (ceasefire_idle_partitions{{{JOB}}})", "idle partitions {{ceasefire}}", ref_id="B"),
        query(
            f"sum by (ceasefire) (increase(ceasefire_late_reports_total{{{JOB}}}[$__rate_interval]))",
            "late {{ceasefire}}",
            ref_id="C",
        ),
    )
    trust = series(
        "Trust and corrections",
        "Reports refused because their source is not who it says it is: an unregistered source, a party its "
        "source is not registered for (or NEUTRAL), a bad signature (alert CeasefireUntrustedReports; "
        "docs/security.md). Revisions: accepted reports that replace an earlier revision of the same report, "
        "and retractions; incidents, alerts and the index follow them (docs/reports.md).",
        "short",
        query(
            "sum by (reason) (increase(ceasefire_reports_total"
            f'{{{JOB}, outcome="dead_lettered", reason=~"signature|unknown_source|party_mismatch"}}[$__rate_interval]))',
            "refused: {{reason}}",
        ),
        query(
            f"sum by (kind) (increase(ceasefire_revisions_total{{{JOB}}}[$__rate_interval]))",
            "{{kind}}",
            ref_id="B",
        ),
    )
    return [dash.Row("Pipeline"), reports, dead, latency, lag, gc_pauses, rocksdb, faults, event_time, trust]


def ceasefire_variable() -> dash.QueryVariable:
    return (
        dash.QueryVariable("ceasefire")
        .label("Ceasefire")
        .datasource(DATASOURCE)
        .query(f"label_values(ceasefire_fragility_index{{{JOB}}}, ceasefire)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(VariableOption(selected=True, text="All", value="$__all"))
    )


def build() -> dash.Dashboard:
    board = (
        dash.Dashboard("Ceasefire monitor")
        .uid(DASHBOARD_UID)
        .description("Fragility, incidents and alerts per ceasefire, and the health of the pipeline.")
        .tags(["ceasefire"])
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("utc")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .with_variable(ceasefire_variable())
        .annotation(alert_episodes())
    )
    items = (*fragility_row(), *incidents_row(), *alerts_row(), *record_row(), *pipeline_row())
    for panel_id, built in enumerate(items, start=1):
        item = built.id(panel_id)
        board = board.with_row(item) if isinstance(item, dash.Row) else board.with_panel(item)
    return board


def render() -> str:
    """The dashboard JSON exactly as checked in (sorted keys, so diffs show what changed)."""
    return JSONEncoder(sort_keys=True, indent=2).encode(build().build()) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the checked-in JSON is stale")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run `python -m deploy.grafana.dashboard`", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
