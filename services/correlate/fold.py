"""The incident fold: what an incident says, computed from the reports it holds.

Every figure is a function of the set of member reports alone (never of arrival order or merge
history), so a rebuilt state publishes exactly what the live one would. The fold runs when an
incident is published; publishing lists every report anyway, so one more pass costs little.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from dataclasses import dataclass, field

from schemas.ceasefire import EARTH_RADIUS_KM, NEUTRAL
from schemas.incident import RUNG, CasualtyRange, Centre, Incident, Status
from services.correlate.link import HeldReport, from_epoch_us


def incident_id(ceasefire_id: str, source: str, report_id: str) -> str:
    """Stable id from the report that opened the incident: the same stream always names it the same."""
    material = "\x1f".join((ceasefire_id, source, report_id)).encode()
    return "inc-" + hashlib.blake2b(material, digest_size=8).hexdigest()


@dataclass(slots=True, eq=False)
class IncidentState:
    """One open incident: its identity, its version and its reports in publication order."""

    incident_id: str
    version: int = 0  # of the last published record; 0 before the first
    members: list[HeldReport] = field(default_factory=list)  # sorted by HeldReport.sort_key
    absorbed: list[str] = field(default_factory=list)  # ids of incidents merged into this one
    first_us: int = 0
    last_us: int = 0
    record: Incident | None = None  # the last published record, for the read API

    def add(self, report: HeldReport) -> None:
        if not self.members:
            self.first_us = self.last_us = report.observed_us
        else:
            self.first_us = min(self.first_us, report.observed_us)
            self.last_us = max(self.last_us, report.observed_us)
        bisect.insort(self.members, report, key=_sort_key)

    def absorb(self, other: IncidentState) -> None:
        """Take over another incident's reports (its identity is the caller's business)."""
        if not other.members:  # an incident revived after a torn write, its reports not back yet
            return
        if not self.members:
            self.first_us, self.last_us = other.first_us, other.last_us
        self.members.extend(other.members)
        self.members.sort(key=_sort_key)  # two sorted runs: linear
        self.first_us = min(self.first_us, other.first_us)
        self.last_us = max(self.last_us, other.last_us)

    @property
    def precedence(self) -> tuple[int, str]:
        """Which incident survives a merge: the earliest observed, then the smaller id."""
        return (self.first_us, self.incident_id)


def _sort_key(report: HeldReport) -> tuple[int, str, str]:
    return report.sort_key


def status_of(members: list[HeldReport]) -> Status:
    """`corroborated` if a neutral source reports, `mutual` if two parties accuse each other, else `claimed`.

    Neutral wins: an observer's word is the strongest confirmation an incident can have."""
    accusations: set[tuple[str, str]] = set()
    for report in members:
        if report.source_party == NEUTRAL:
            return "corroborated"
        if report.accused_party is not None:
            accusations.add((report.source_party, report.accused_party))
    if any((accused, accuser) in accusations for accuser, accused in accusations):
        return "mutual"
    return "claimed"


def centre_of(members: list[HeldReport]) -> Centre | None:
    """Mean of the unit vectors weighted by 1/precision², back on the sphere; radius reaches every report."""
    located = [(v, r.precision_km) for r in members if (v := r.unit_vector()) is not None]
    if not located:
        return None
    x = y = z = 0.0
    for (vx, vy, vz), precision in located:
        weight = 1.0 / (precision * precision)
        x += weight * vx
        y += weight * vy
        z += weight * vz
    norm = math.sqrt(x * x + y * y + z * z) or 1.0  # zero only for reports at antipodes
    cx, cy, cz = x / norm, y / norm, z / norm
    lat_c = math.degrees(math.atan2(z, math.hypot(x, y)))
    lon_c = math.degrees(math.atan2(y, x))
    # Great-circle distance from the chord between unit vectors: the haversine without re-deriving
    # every report's trigonometry on every publication of a large incident.
    widest = 0.0
    for (vx, vy, vz), precision in located:
        chord = math.sqrt((vx - cx) ** 2 + (vy - cy) ** 2 + (vz - cz) ** 2)
        widest = max(widest, 2 * EARTH_RADIUS_KM * math.asin(min(1.0, chord / 2)) + precision)
    # Rounded (1e-7 degrees is about 1 cm, radius to 1 m): float noise of the sphere round trip is not news.
    return Centre(lat=round(lat_c, 7), lon=round(lon_c, 7), radius_km=round(widest, 3))


def _range(values: list[int]) -> tuple[int | None, int | None]:
    return (min(values), max(values)) if values else (None, None)


def casualties_of(members: list[HeldReport]) -> CasualtyRange:
    """Low and high across the reports that give a figure: several reports count the same dead."""
    killed_low, killed_high = _range([r.killed for r in members if r.killed is not None])
    injured_low, injured_high = _range([r.injured for r in members if r.injured is not None])
    return CasualtyRange(
        killed_low=killed_low, killed_high=killed_high, injured_low=injured_low, injured_high=injured_high
    )


def publish(
    state: IncidentState, ceasefire_id: str, status: Status | None = None, merged_into: str | None = None
) -> Incident:
    """The record for `state.version` (the caller bumps the version first)."""
    members = state.members
    return Incident(
        incident_id=state.incident_id,
        ceasefire_id=ceasefire_id,
        version=state.version,
        status=status or status_of(members),
        merged_into=merged_into,
        first_observed_at=from_epoch_us(state.first_us),
        last_observed_at=from_epoch_us(state.last_us),
        location=centre_of(members),
        sectors=sorted({r.sector for r in members if r.sector is not None}),
        violation_types=sorted({r.violation_type for r in members}),
        severity=max(RUNG[r.violation_type] for r in members),
        reporting_parties=sorted({r.source_party for r in members}),
        accused_parties=sorted({r.accused_party for r in members if r.accused_party is not None}),
        sources=sorted({r.source for r in members}),
        reports=[r.link_record() for r in members],
        report_count=len(members),
        casualties=casualties_of(members),
        late=any(r.late for r in members),
    )
