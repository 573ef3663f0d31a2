"""Every metric of the service, declared once against a registry passed in (nothing at import time).

Naming: `ceasefire_` prefix, base units, `_total` counters, bounded labels only (never a report id).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

OUTCOMES = ("accepted", "duplicate", "dead_lettered")


@dataclass(frozen=True)
class Metrics:
    reports: Counter
    duplicates: Counter
    dedup_expired: Counter
    batch_records: Histogram
    incident_versions: Counter
    incidents: Counter
    alerts: Counter
    latency: Histogram
    undecodable: Counter
    record_faults: Counter
    late_reports: Counter
    idle_partitions: Gauge
    redeliveries: Counter
    gc_pause: Histogram
    revisions: Counter
    http_requests: Counter
    archived: Counter
    archive_lag: Gauge
    archive_write: Histogram
    archive_failures: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry, dead_letter_reasons: Iterable[str] = ()) -> Metrics:
        """`dead_letter_reasons`: the fixed set of the `reason` label (ingest's), pre-created as zeros."""
        metrics = cls(
            reports=Counter(
                "ceasefire_reports_total",
                "Reports read from the ingest topic, by where they ended (reason: dead letters only).",
                ["outcome", "reason"],
                registry=registry,
            ),
            duplicates=Counter(
                "ceasefire_duplicates_total",
                "Reports dropped as repeats, by dedup rule.",
                ["rule"],
                registry=registry,
            ),
            dedup_expired=Counter(
                "ceasefire_dedup_expired_total",
                "Dedup entries deleted after the retention window (event time).",
                registry=registry,
            ),
            batch_records=Histogram(
                "ceasefire_batch_records",
                "Records per batch an agent processed.",
                ["stage"],
                buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
                registry=registry,
            ),
            incident_versions=Counter(
                "ceasefire_incident_versions_total",
                "Incident records published, by ceasefire and status.",
                ["ceasefire", "status"],
                registry=registry,
            ),
            incidents=Counter(
                "ceasefire_incidents_total",
                "New incidents, by ceasefire, first sector and severity rung (counted by the alert stage).",
                ["ceasefire", "sector", "severity"],
                registry=registry,
            ),
            alerts=Counter(
                "ceasefire_alerts_total",
                "Alert records published, by rule, severity and status.",
                ["alertname", "severity", "status"],
                registry=registry,
            ),
            latency=Histogram(
                "ceasefire_end_to_end_latency_seconds",
                "From a report's ingested_at to the incident (or alert) that it changed being published.",
                ["output"],
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                registry=registry,
            ),
            undecodable=Counter(
                "ceasefire_undecodable_total",
                "Records on an internal or downstream topic that did not decode, dead-lettered, by stage.",
                ["stage"],
                registry=registry,
            ),
            record_faults=Counter(
                "ceasefire_record_faults_total",
                "Records a stage's domain logic raised on: dead-lettered on the stage's topic, the stage goes on.",
                ["stage"],
                registry=registry,
            ),
            late_reports=Counter(
                "ceasefire_late_reports_total",
                "Reports correlated later than the allowed lateness behind the ceasefire's event time, by ceasefire.",
                ["ceasefire"],
                registry=registry,
            ),
            idle_partitions=Gauge(
                "ceasefire_idle_partitions",
                "Ingest partitions this worker owns that are idle for a ceasefire (caught up, silent for"
                " CEASEFIRE_IDLE_SECONDS): excluded from the ceasefire's low watermark.",
                ["ceasefire"],
                registry=registry,
            ),
            redeliveries=Counter(
                "ceasefire_redeliveries_total",
                "Records read again after a crash or rebalance, recognised by their origin and not booked twice.",
                ["stage"],
                registry=registry,
            ),
            gc_pause=Histogram(
                "ceasefire_gc_pause_seconds",
                "Garbage collections of this worker, by generation: each one stops every stage of the process.",
                ["generation"],
                buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
                registry=registry,
            ),
            revisions=Counter(
                "ceasefire_revisions_total",
                "Accepted reports that replace an earlier revision of the same report, by kind (revised, retracted).",
                ["kind"],
                registry=registry,
            ),
            http_requests=Counter(
                "ceasefire_http_ingest_requests_total",
                "POST /reports requests, by the status answered (202, 400, 401, 413, 415, 429).",
                ["status"],
                registry=registry,
            ),
            archived=Counter(
                "ceasefire_archive_records_total",
                "Records the archive wrote, by topic role and outcome (written, fault: kept as a fault row).",
                ["topic", "outcome"],
                registry=registry,
            ),
            archive_lag=Gauge(
                "ceasefire_archive_lag_records",
                "Records on the archived topics not yet in the archive, by topic role (this worker's partitions).",
                ["topic"],
                registry=registry,
            ),
            archive_write=Histogram(
                "ceasefire_archive_write_seconds",
                "Time to write one batch to the archive's database (one transaction).",
                buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
                registry=registry,
            ),
            archive_failures=Counter(
                "ceasefire_archive_write_failures_total",
                "Batch writes the archive's database refused or failed; the batch is retried, never skipped.",
                registry=registry,
            ),
        )
        # Pre-create every bounded series so dashboards see zeros, not gaps.
        metrics.reports.labels("accepted", "")
        metrics.reports.labels("duplicate", "")
        for reason in dead_letter_reasons:
            metrics.reports.labels("dead_lettered", reason)
        for rule in ("exact", "resubmission"):
            metrics.duplicates.labels(rule)
        for stage in ("deduplicate", "correlate", "alert"):
            metrics.undecodable.labels(stage)
            metrics.record_faults.labels(stage)
        metrics.redeliveries.labels("deduplicate")
        for generation in ("0", "1", "2"):
            metrics.gc_pause.labels(generation)
        for kind in ("revised", "retracted"):
            metrics.revisions.labels(kind)
        return metrics
