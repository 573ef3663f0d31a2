"""What a pipeline run produced, in the terms runs are compared by: the live incidents (as report sets),
the alert episodes and the fragility series, up to the newest report's event time (after it, a quiet
ceasefire's event time runs on with the wall clock)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas.alert import Alert
from schemas.fragility import FragilitySnapshot
from schemas.incident import Incident
from schemas.report import AcceptedReport
from schemas.topics import Role
from services.runtime.settings import Settings
from tests.support.kafka import read_topic

Key = tuple[str, str]


@dataclass(frozen=True)
class Outputs:
    incidents: set[frozenset[Key]]
    episodes: dict[tuple[str, datetime], tuple[datetime | None, str]]  # (fingerprint, starts_at) → ends, severity
    series: list[tuple[str, datetime, float]]  # (ceasefire, as_of, index)


async def outputs(settings: Settings) -> tuple[Outputs, list[AcceptedReport]]:
    read = [await read_topic(settings.bootstrap, settings.topic(role)) for role in (Role.INCIDENTS, Role.ALERTS, Role.FRAGILITY, Role.ACCEPTED)]
    newest: dict[str, Incident] = {}
    for record in read[0]:
        incident = Incident.model_validate_json(record.value)
        if incident.incident_id not in newest or incident.version > newest[incident.incident_id].version:
            newest[incident.incident_id] = incident
    incidents = {
        frozenset((r.source, r.report_id) for r in i.reports) for i in newest.values() if i.status != "merged"
    }
    accepted = [AcceptedReport.model_validate_json(record.value) for record in read[3]]
    # after a ceasefire's last report, its event time runs on with the wall clock: compare up to it
    last: dict[str, datetime] = {}
    for r in accepted:
        last[r.ceasefire_id] = max(last.get(r.ceasefire_id, r.observed_at), r.observed_at)
    episodes: dict[tuple[str, datetime], tuple[datetime | None, str]] = {}
    for record in read[1]:
        alert = Alert.model_validate_json(record.value)
        if alert.updated_at <= last[alert.labels["ceasefire"]]:  # what the reports made, not the quiet time after
            episodes[alert.fingerprint, alert.starts_at] = (alert.ends_at, alert.labels["severity"])
    series = {}
    for record in read[2]:
        snapshot = FragilitySnapshot.model_validate_json(record.value)
        if snapshot.kind == "grid" and snapshot.as_of <= last[snapshot.ceasefire_id]:
            series[snapshot.ceasefire_id, snapshot.as_of] = snapshot.index
    return Outputs(incidents, episodes, [(c, at, index) for (c, at), index in sorted(series.items())]), accepted
