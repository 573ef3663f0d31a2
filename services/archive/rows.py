"""Topic records → archive rows (pure: no database, no Kafka). One `Rows` per batch of records.

A record that cannot be read as its topic's model is kept as a fault (its bytes and why), never
dropped: these are the service's own topics, so a fault says a writer broke its contract.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.alert import Alert
from schemas.fragility import FragilitySnapshot
from schemas.incident import GONE, Incident
from schemas.ingest import Duplicate
from schemas.report import AcceptedReport
from schemas.topics import Role
from services.ingest.validate import named_report

ARCHIVED = (Role.ACCEPTED, Role.DUPLICATES, Role.DEAD_LETTERS, Role.INCIDENTS, Role.ALERTS, Role.FRAGILITY)
Spelling = Callable[[str], str]
ERRORS_PREFIX = "__connect.errors."  # the dead letters' Kafka Connect header names (services/ingest/deadletter.py)


@dataclass(frozen=True)
class Record:
    """One record as read: which topic (by role), where, when the broker took it, its bytes."""

    role: Role
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass
class Rows:
    reports: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # newest revision in the batch
    revisions: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    incidents: dict[str, Incident] = field(default_factory=dict)  # newest version in the batch
    versions: list[dict[str, Any]] = field(default_factory=list)
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)  # newest record in the batch
    episodes: dict[tuple[str, datetime], dict[str, Any]] = field(default_factory=dict)
    fragility: dict[tuple[str, datetime, str], dict[str, Any]] = field(default_factory=dict)
    faults: list[tuple[Record, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return (
            len(self.revisions) + len(self.duplicates) + len(self.dead_letters) + len(self.versions)
            + len(self.alerts) + len(self.fragility)
        )


def record_time(record: Record) -> datetime:
    """When the broker took the record (processing time: a dead letter's or duplicate's 'when')."""
    return datetime.fromtimestamp(record.timestamp_ms / 1000, tz=UTC)


def _json(model: Any) -> Any:
    return orjson.loads(model.model_dump_json())


def report_row(report: AcceptedReport) -> dict[str, Any]:
    loc, casualties = report.location, report.casualties
    return {
        "source": report.source,
        "report_id": report.report_id,
        "ceasefire_id": report.ceasefire_id,
        "revision": report.revision,
        "status": report.status,
        "retraction_reason": report.retraction_reason,
        "source_party": report.source_party,
        "accused_party": report.accused_party,
        "observed_at": report.observed_at,
        "reported_at": report.reported_at,
        "ingested_at": report.ingested_at,
        "violation_type": str(report.violation_type),
        "sector": loc.sector,
        "place": loc.place,
        "lat": loc.lat,
        "lon": loc.lon,
        "precision_km": loc.precision_km,
        "killed": casualties.killed if casualties else None,
        "injured": casualties.injured if casualties else None,
        "civilian": casualties.civilian if casualties else None,
        "description": report.description,
        "body": _json(report),
    }


def incident_row(incident: Incident) -> dict[str, Any]:
    centre, c = incident.location, incident.casualties
    return {
        "incident_id": incident.incident_id,
        "ceasefire_id": incident.ceasefire_id,
        "version": incident.version,
        "status": incident.status,
        "merged_into": incident.merged_into,
        "first_observed_at": incident.first_observed_at,
        "last_observed_at": incident.last_observed_at,
        "lat": centre.lat if centre else None,
        "lon": centre.lon if centre else None,
        "radius_km": centre.radius_km if centre else None,
        "severity": int(incident.severity),
        "report_count": incident.report_count,
        "killed_low": c.killed_low,
        "killed_high": c.killed_high,
        "injured_low": c.injured_low,
        "injured_high": c.injured_high,
        "reciprocal": incident.reciprocal,
        "late": incident.late,
        "ordered_at": incident.ordered_at,
        "body": _json(incident),
    }


def member_rows(incident: Incident) -> list[dict[str, Any]]:
    """The reports of a version: none once it is gone (merged into another, or withdrawn)."""
    if incident.status in GONE:
        return []
    return [
        {"incident_id": incident.incident_id, "source": link.source, "report_id": link.report_id,
         "revision": link.revision, "sector": link.sector}
        for link in incident.reports
    ]


def alert_row(alert: Alert) -> dict[str, Any]:
    return {
        "fingerprint": alert.fingerprint,
        "version": alert.version,
        "alertname": alert.alertname,
        "ceasefire_id": alert.labels["ceasefire"],
        "severity": alert.severity,
        "status": alert.status,
        "starts_at": alert.starts_at,
        "ends_at": alert.ends_at,
        "updated_at": alert.updated_at,
        "labels": dict(alert.labels),
        "annotations": _json(alert.annotations),
    }


def dead_letter_row(record: Record, spell: Spelling = str) -> dict[str, Any]:
    headers = {name: value for name, value in record.headers}
    named = _named_report(record.value)
    problems = orjson.loads(headers["ceasefire.errors"]) if "ceasefire.errors" in headers else []
    return {
        "origin_partition": int(headers.get(ERRORS_PREFIX + "partition", b"-1")),
        "origin_offset": int(headers.get(ERRORS_PREFIX + "offset", str(-1 - record.offset).encode())),
        "reason": headers.get("ceasefire.reason", b"unknown").decode(errors="replace"),
        "problems": problems,
        "source": spell(named[0]) if named else None,
        "report_id": named[1] if named else None,
        "revision": named[2] if named else None,
        "key": record.key,
        "value": record.value,
        "at": record_time(record),
    }


def _named_report(value: bytes | None) -> tuple[str, str, int | None] | None:
    """The (source, report_id) a rejected record names, when it names one a report could have."""
    found = named_report(value)
    return None if found is None else (found.source, found.report_id, found.revision)


def fold(records: Iterable[Record], spell: Spelling = str) -> Rows:
    """The rows a batch of records makes; within the batch the newest version of a key wins.
    `spell`: a source id as the source registry spells it (a dead letter carries it as sent)."""
    rows = Rows()
    for record in records:
        if record.value is None:  # a tombstone: none of these topics is written with one
            continue
        try:
            _take(rows, record, spell)
        except (ValidationError, ValueError, KeyError) as exc:
            rows.faults.append((record, f"{type(exc).__name__}: {str(exc)[:500]}"))
    return rows


def _take(rows: Rows, record: Record, spell: Spelling) -> None:
    value = record.value or b""
    if record.role is Role.ACCEPTED:
        report = AcceptedReport.model_validate_json(value)
        row = report_row(report)
        rows.revisions.append({k: row[k] for k in ("source", "report_id", "revision", "status", "ingested_at", "body")})
        held = rows.reports.get((report.source, report.report_id))
        if held is None or held["revision"] <= report.revision:
            rows.reports[(report.source, report.report_id)] = row
    elif record.role is Role.DUPLICATES:
        duplicate = Duplicate.model_validate_json(value)
        rows.duplicates.append({
            "origin_partition": duplicate.origin.partition, "origin_offset": duplicate.origin.offset,
            "source": duplicate.source, "report_id": duplicate.report_id, "rule": duplicate.rule,
            "duplicate_of": duplicate.duplicate_of, "at": record_time(record),
        })
    elif record.role is Role.DEAD_LETTERS:
        rows.dead_letters.append(dead_letter_row(record, spell))
    elif record.role is Role.INCIDENTS:
        _take_incident(rows, Incident.model_validate_json(value))
    elif record.role is Role.ALERTS:
        _take_alert(rows, Alert.model_validate_json(value))
    elif record.role is Role.FRAGILITY:
        _take_fragility(rows, FragilitySnapshot.model_validate_json(value))


def _take_incident(rows: Rows, incident: Incident) -> None:
    rows.versions.append({
        "incident_id": incident.incident_id, "version": incident.version, "status": incident.status,
        "ordered_at": incident.ordered_at, "body": _json(incident),
    })
    held = rows.incidents.get(incident.incident_id)
    if held is None or held.version < incident.version:
        rows.incidents[incident.incident_id] = incident


def _take_alert(rows: Rows, alert: Alert) -> None:
    row = alert_row(alert)
    held = rows.alerts.get(alert.fingerprint)
    if held is None or held["version"] < alert.version:
        rows.alerts[alert.fingerprint] = row
    episode = {**row, "summary": alert.annotations.summary}
    known = rows.episodes.get((alert.fingerprint, alert.starts_at))
    if known is None or known["version"] < alert.version:
        rows.episodes[(alert.fingerprint, alert.starts_at)] = episode


def _take_fragility(rows: Rows, snapshot: FragilitySnapshot) -> None:
    if snapshot.kind == "repeat":  # the latest again, for dashboards: nothing new for the record
        return
    rows.fragility[(snapshot.ceasefire_id, snapshot.as_of, snapshot.kind)] = {
        "ceasefire_id": snapshot.ceasefire_id, "as_of": snapshot.as_of, "kind": snapshot.kind,
        "fragility_index": snapshot.index, "components": _json(snapshot.components),
        "inputs": _json(snapshot.inputs), "weights": _json(snapshot.weights),
    }
