"""Incident schema v1 (topic `ceasefire.incidents.v1`, key `incident_id`): the whole current incident.

An incident is a connected component of the link rule over a ceasefire's accepted reports
(docs/link-rule.md). Every change publishes the whole incident again with `version` + 1; when two
incidents merge, the absorbed one gets a last record with `status: "merged"` and `merged_into`; when
the retraction of its last report dissolves one, its last record has `status: "withdrawn"`.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.report import ViolationType


class Severity(IntEnum):
    """The weapon ladder: an incident's severity is the highest rung among its reports."""

    LIGHT = 1  # small arms, sniper, heavy machine gun, infiltration, airspace violation, other
    MORTAR = 2
    ARTILLERY = 3  # artillery, rocket, ground assault
    DRONE = 4
    STRIKE = 5  # missile, air strike


RUNG: dict[ViolationType, Severity] = {
    ViolationType.SMALL_ARMS: Severity.LIGHT,
    ViolationType.SNIPER: Severity.LIGHT,
    ViolationType.HEAVY_MACHINE_GUN: Severity.LIGHT,
    ViolationType.INFILTRATION: Severity.LIGHT,
    ViolationType.AIRSPACE_VIOLATION: Severity.LIGHT,
    ViolationType.OTHER: Severity.LIGHT,
    ViolationType.MORTAR: Severity.MORTAR,
    ViolationType.ARTILLERY: Severity.ARTILLERY,
    ViolationType.ROCKET: Severity.ARTILLERY,
    ViolationType.GROUND_ASSAULT: Severity.ARTILLERY,
    ViolationType.DRONE: Severity.DRONE,
    ViolationType.MISSILE: Severity.STRIKE,
    ViolationType.AIR_STRIKE: Severity.STRIKE,
}

Status = Literal["claimed", "mutual", "corroborated", "merged", "withdrawn"]
GONE: frozenset[str] = frozenset({"merged", "withdrawn"})  # an incident's last record: it exists no more


class ReportLink(BaseModel):
    """One report of the incident and why it is there: the report it linked to, how far, how long apart."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    source: str
    report_id: str
    source_party: str
    accused_party: str | None
    observed_at: AwareDatetime
    violation_type: ViolationType
    sector: str | None = None
    lat: float | None = None
    lon: float | None = None
    precision_km: float = 1.0
    killed: int | None = None
    injured: int | None = None
    ingested_at: AwareDatetime
    linked_to: tuple[str, str] | None = None  # (source, report_id) it linked to; None for the first
    distance_km: float | None = None  # None when the link was by sector
    gap_minutes: float | None = None
    late: bool = False
    revision: int = 1  # the report's revision this version of the incident holds


class Centre(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    lat: float
    lon: float
    radius_km: float  # farthest report (plus its precision) from the centre


class CasualtyRange(BaseModel):
    """Across the reports that state a figure; never summed (several reports count one incident's dead)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    killed_low: int | None = None
    killed_high: int | None = None
    injured_low: int | None = None
    injured_high: int | None = None


class Incident(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    incident_id: str
    ceasefire_id: str
    version: int = Field(ge=1)
    status: Status
    merged_into: str | None = None
    first_observed_at: AwareDatetime
    last_observed_at: AwareDatetime
    location: Centre | None = None  # precision-weighted centre of the reports with coordinates
    sectors: list[str]
    violation_types: list[ViolationType]
    severity: Severity
    reporting_parties: list[str]  # source parties, NEUTRAL included
    accused_parties: list[str]
    sources: list[str]
    reports: list[ReportLink]
    report_count: int
    casualties: CasualtyRange
    late: bool = False  # some report arrived later than the allowed lateness
    # the event time at which correlation took the report that made this version (its `ordered_at`):
    # the alert stage's clock (docs/event-time.md); None in records written before it was added
    ordered_at: AwareDatetime | None = None
    # two parties accuse each other, through two sources at least (tit-for-tat), whatever the status
    # (a mutual incident an observer corroborated stays reciprocal); None in records from before it
    reciprocal: bool | None = None


class IncidentBatch(BaseModel):
    """Internal topic record (correlate → alert): the incident versions one batch produced, and each
    ceasefire's watermark after it. Partitioned like the accepted topic, so one ceasefire's incidents
    meet in one alert worker."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    watermarks: dict[str, AwareDatetime]
    # the newest `ingested_at` among the reports of these versions: the alert stage's latency metric,
    # so that it need not read the reports (None in records written before it was added)
    newest_ingested_at: AwareDatetime | None = None
    incidents: list[Incident]



class IncidentVersion(BaseModel):
    """An incident version as the alert stage reads it off the internal topic: the fields its rules
    and metrics use. The rest of each record (the reports, the centre) is skipped, not validated: the
    correlate stage wrote it from an `Incident`. Validating every report of every version was ~100 µs
    a version (8 reports on average in the bench mix), the largest share of the alert stage's time."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    incident_id: str
    ceasefire_id: str
    version: int = Field(ge=1)
    status: Status
    last_observed_at: AwareDatetime
    sectors: list[str]
    severity: Severity
    accused_parties: list[str]
    report_count: int
    casualties: CasualtyRange
    ordered_at: AwareDatetime | None = None
    reciprocal: bool | None = None


class IncidentVersionBatch(BaseModel):
    """An `IncidentBatch` record as the alert stage reads it (same bytes, fewer fields validated)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    watermarks: dict[str, AwareDatetime]
    newest_ingested_at: AwareDatetime | None = None
    incidents: list[IncidentVersion]
