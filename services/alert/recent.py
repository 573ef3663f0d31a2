"""The alert stage's memory of a ceasefire's recent incidents: one small summary per incident.

Alert rules and the fragility index read these summaries, never whole incidents: a summary is the
latest version of one incident reduced to what the rules need. Two times per incident:
  - `at`: its last observed report (event time). Windows (rates, trend, surge, escalation) count an
    incident at `at`, so an incident still going on counts as recent.
  - `seen_at`: the engine's watermark when this version arrived (never before `at`). Alert holds run
    from `seen_at`, so a late incident still raises its alert instead of arriving "already resolved".
An absorbed incident (status `merged`) stays as a tombstone until it ages out, so that older versions
delivered again are still recognised; rules skip tombstones (the survivor carries the reports).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from datetime import datetime
from operator import attrgetter

from pydantic import AwareDatetime, BaseModel, ConfigDict

from schemas.incident import GONE, Incident, IncidentVersion, Severity

UNKNOWN_SECTOR = "unknown"


class IncidentSummary(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    incident_id: str
    version: int
    merged: bool = False
    at: AwareDatetime
    seen_at: AwareDatetime
    severity: Severity
    sectors: tuple[str, ...]  # as the incident names them; may be empty
    reciprocal: bool  # each side accuses the other (status `mutual`, or still so once corroborated)
    killed: int  # `killed_high`, 0 when no figure was given
    injured: int  # `injured_high`, 0 when no figure was given
    report_count: int

    @property
    def alert_sectors(self) -> tuple[str, ...]:
        """Sectors for per-sector alerts: an incident that names none is filed under `unknown`."""
        return self.sectors or (UNKNOWN_SECTOR,)


def is_reciprocal(incident: Incident | IncidentVersion) -> bool:
    """Tit-for-tat: two parties accuse each other through two sources (correlation says so, whatever the
    status); for a record from before it said so, `mutual` or two parties accused."""
    if incident.reciprocal is not None:
        return incident.reciprocal
    return incident.status == "mutual" or len(set(incident.accused_parties)) >= 2


def summarise(incident: Incident | IncidentVersion, seen_at: datetime) -> IncidentSummary:
    c = incident.casualties
    return IncidentSummary(
        incident_id=incident.incident_id,
        version=incident.version,
        merged=incident.status in GONE,  # a tombstone either way
        at=incident.last_observed_at,
        seen_at=max(seen_at, incident.last_observed_at),
        severity=incident.severity,
        sectors=tuple(sorted(set(incident.sectors))),
        reciprocal=is_reciprocal(incident),
        killed=c.killed_high or 0,
        injured=c.injured_high or 0,
        report_count=incident.report_count,
    )


def live(summaries: Iterable[IncidentSummary]) -> Iterator[IncidentSummary]:
    """Skip tombstones of merged incidents."""
    return (s for s in summaries if not s.merged)


def within(summaries: Iterable[IncidentSummary], start: datetime, end: datetime) -> list[IncidentSummary]:
    """Live incidents whose `at` lies in the half-open window (start, end]."""
    return [s for s in live(summaries) if start < s.at <= end]


class Timeline:
    """Live incidents sorted by `at`: window questions by bisection instead of a scan each."""

    def __init__(self, summaries: Iterable[IncidentSummary]) -> None:
        self.entries = sorted(live(summaries), key=lambda s: (s.at, s.incident_id))
        self.times = [s.at for s in self.entries]

    def count(self, start: datetime, end: datetime) -> int:
        """How many in (start, end]."""
        return bisect_right(self.times, end) - bisect_right(self.times, start)

    def before(self, start: datetime, end: datetime) -> list[IncidentSummary]:
        """Those in the open window (start, end)."""
        return self.entries[bisect_right(self.times, start) : bisect_left(self.times, end)]


def newest_first(summaries: Iterable[IncidentSummary]) -> list[IncidentSummary]:
    """A deterministic order for annotations: latest `at` first, then by id (by id, then a stable sort
    by `at` from the latest: two sorts on plain keys cost less than one on a computed pair)."""
    return sorted(sorted(summaries, key=_by_id), key=_by_at, reverse=True)


_by_id, _by_at = attrgetter("incident_id"), attrgetter("at")
