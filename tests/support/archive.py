"""Records of every archived topic, as the stages write them, for the archive's tests."""

from __future__ import annotations

from datetime import timedelta

import orjson

from schemas.alert import Alert, Annotations, fingerprint
from schemas.fragility import FragilityComponents, FragilityInputs, FragilitySnapshot, FragilityWeights
from schemas.ingest import Duplicate, Origin
from schemas.report import AcceptedReport
from schemas.topics import Role
from services.archive.rows import Record
from services.ingest.deadletter import dead_letter_headers
from services.ingest.validate import Problem, Reason
from tests.support.incidents import CEASEFIRE, START, at, incident
from tests.support.reports import encode, report


def record(role: Role, offset: int, value: bytes, headers: list[tuple[str, bytes]] | None = None) -> Record:
    return Record(role, 0, offset, int((START + timedelta(seconds=offset)).timestamp() * 1000), None, value, tuple(headers or ()))


def accepted(offset: int, **overrides: object) -> Record:
    doc = report(**overrides)
    value = AcceptedReport.model_validate({**doc, "ingested_at": START.isoformat()}).model_dump_json().encode()
    return record(Role.ACCEPTED, offset, value)


def alert(version: int, status: str, starts_hours: float, sector: str = "Poonch") -> Alert:
    labels = {"alertname": "CeasefireViolation", "ceasefire": CEASEFIRE, "severity": "warning", "sector": sector}
    return Alert(
        fingerprint=fingerprint(labels), labels=labels,
        annotations=Annotations(summary=f"Ceasefire violation in {sector}", description="d", incident_ids=["inc-a"]),
        status=status, starts_at=at(starts_hours), ends_at=at(starts_hours + 1) if status == "resolved" else None,
        updated_at=at(starts_hours + version / 10), version=version,
    )


def snapshot(hours: float, index: float, kind: str = "grid") -> FragilitySnapshot:
    return FragilitySnapshot(
        ceasefire_id=CEASEFIRE, as_of=at(hours), index=index, kind=kind,
        components=FragilityComponents(intensity=index / 100, trend=0, severity=0, casualties=0, reciprocity=0, spread=0, recency=0),
        weights=FragilityWeights(),
        inputs=FragilityInputs(incidents_last_hour=1, incidents_recent=1, recent_hourly_rate=1, baseline_hourly_mean=0,
                               killed=0, injured=0, reciprocal_incidents=0, sectors=["Poonch"],
                               recent_window_hours=6, baseline_window_hours=24),
    )


def sample_records() -> list[Record]:
    """A little of everything: revisions, a retraction, duplicates, dead letters (one unreadable),
    incident versions with a merge, an alert's two episodes, the fragility series."""
    problems = [Problem(Reason.SCHEMA, "$.casualties.killed", "not an integer")]
    broken = encode(report(report_id="r-broken", casualties={"killed": "three"}))
    records = [
        accepted(1, report_id="r-1"),
        accepted(2, report_id="r-1", revision=2, casualties={"killed": 2}),
        accepted(3, report_id="r-2", location__sector="Poonch"),
        accepted(4, report_id="r-2", revision=2, status="retracted", retraction_reason="filed twice"),
        record(Role.DUPLICATES, 5, Duplicate(source="in.army", report_id="r-1", rule="exact", duplicate_of="r-1",
                                              origin=Origin(partition=0, offset=50)).model_dump_json().encode()),
        record(Role.DUPLICATES, 6, Duplicate(source="in.army", report_id="r-3", rule="resubmission", duplicate_of="r-1",
                                              origin=Origin(partition=1, offset=51)).model_dump_json().encode()),
        record(Role.DEAD_LETTERS, 7, broken, dead_letter_headers("t", 2, 70, problems)),
        record(Role.DEAD_LETTERS, 8, b"\xff not json", dead_letter_headers("t", 2, 71, [Problem(Reason.NOT_JSON, "$", "x")])),
    ]
    versions = [
        incident("inc-a", 0), incident("inc-a", 1, version=2, status="mutual"),
        incident("inc-b", 0.5), incident("inc-b", 1, version=2, status="merged", merged_into="inc-a"),
        incident("inc-a", 1, version=3, status="corroborated", killed=2),
    ]
    records += [record(Role.INCIDENTS, 10 + n, v.model_dump_json().encode()) for n, v in enumerate(versions)]
    alerts = [alert(1, "firing", 0), alert(2, "resolved", 0), alert(3, "firing", 5), alert(1, "firing", 2, "Uri")]
    records += [record(Role.ALERTS, 20 + n, a.model_dump_json().encode()) for n, a in enumerate(alerts)]
    points = [snapshot(0, 10), snapshot(0.25, 20), snapshot(0.5, 30), snapshot(0.4, 25, "change"), snapshot(0.5, 30, "repeat")]
    records += [record(Role.FRAGILITY, 30 + n, p.model_dump_json().encode()) for n, p in enumerate(points)]
    records.append(record(Role.INCIDENTS, 40, orjson.dumps({"not": "an incident"})))  # a writer's broken record
    return records
