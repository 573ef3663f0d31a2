"""The link rule: when two accepted reports of one ceasefire describe the same incident.

Pure and symmetric. Two reports link when they are close in event time, close in place and their
parties agree (docs/link-rule.md). `explain` says why or why not, because an incident publishes the
explanation of every link that built it. Reports are held as `HeldReport`, a slotted record of
the facts the rule and the incident fold need, so a hot ceasefire does not hold pydantic models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from schemas.ceasefire import NEUTRAL, Ceasefire, Sector, great_circle_km
from schemas.incident import ReportLink
from schemas.report import AcceptedReport, ViolationType

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
MINUTE_US = 60_000_000

Reason = Literal["distance", "sector", "sector_contains", "time", "place", "parties"]


def epoch_us(at: datetime) -> int:
    """Event time as integer microseconds: exact, so "exactly 30 minutes apart" is exactly that."""
    return (at - EPOCH) // MICROSECOND


def from_epoch_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


@dataclass(slots=True, eq=False)
class HeldReport:
    """An accepted report as correlation holds it, with how it joined its incident."""

    source: str
    report_id: str
    source_party: str
    accused_party: str | None
    observed_us: int
    violation_type: ViolationType
    sector: str | None
    lat: float | None
    lon: float | None
    precision_km: float
    killed: int | None
    injured: int | None
    ingested_at: datetime
    seq: int = 0  # arrival order within the ceasefire
    late: bool = False
    linked_to: tuple[str, str] | None = None
    distance_km: float | None = None
    gap_minutes: float | None = None
    record: ReportLink | None = None  # built once, when first published
    vector: tuple[float, float, float] | None = None  # unit vector of the point, for the incident centre

    @classmethod
    def from_accepted(cls, report: AcceptedReport, seq: int = 0) -> HeldReport:
        where, casualties = report.location, report.casualties
        return cls(
            source=report.source,
            report_id=report.report_id,
            source_party=report.source_party,
            accused_party=report.accused_party,
            observed_us=epoch_us(report.observed_at),
            violation_type=report.violation_type,
            sector=where.sector,
            lat=where.lat,
            lon=where.lon,
            precision_km=float(where.precision_km),
            killed=None if casualties is None else casualties.killed,
            injured=None if casualties is None else casualties.injured,
            ingested_at=report.ingested_at,
            seq=seq,
        )

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.report_id)

    @property
    def observed_at(self) -> datetime:
        return from_epoch_us(self.observed_us)

    @property
    def sort_key(self) -> tuple[int, str, str]:
        """The order of an incident's `reports`: (observed_at, source, report_id)."""
        return (self.observed_us, self.source, self.report_id)

    def link_record(self) -> ReportLink:
        """The published form; cached because a report is republished with every change of its incident."""
        if self.record is None:
            self.record = ReportLink(
                source=self.source,
                report_id=self.report_id,
                source_party=self.source_party,
                accused_party=self.accused_party,
                observed_at=self.observed_at,
                violation_type=self.violation_type,
                sector=self.sector,
                lat=self.lat,
                lon=self.lon,
                precision_km=self.precision_km,
                killed=self.killed,
                injured=self.injured,
                ingested_at=self.ingested_at,
                linked_to=self.linked_to,
                distance_km=self.distance_km,
                gap_minutes=self.gap_minutes,
                late=self.late,
            )
        return self.record

    def unit_vector(self) -> tuple[float, float, float] | None:
        """The point on the unit sphere (None without coordinates); cached, the centre needs it often."""
        if self.vector is None and self.lat is not None and self.lon is not None:
            lat, lon = math.radians(self.lat), math.radians(self.lon)
            self.vector = (math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat))
        return self.vector

    def join(self, other: HeldReport, link: Link) -> None:
        """Record the link that brought this report into its incident."""
        self.linked_to = other.key
        self.distance_km = link.distance_km
        self.gap_minutes = link.gap_minutes
        self.record = None


@dataclass(frozen=True, slots=True)
class Link:
    """The verdict on one pair, with the clause that decided it."""

    linked: bool
    reason: Reason
    gap_minutes: float
    distance_km: float | None = None  # great-circle km when both have coordinates, else None

    @property
    def rank(self) -> tuple[float, int, float]:
        """Which of several links explains a join: the closest in time, then by coordinates, the nearest."""
        if self.distance_km is None:
            return (self.gap_minutes, 1, 0.0)
        return (self.gap_minutes, 0, self.distance_km)


def parties_agree(a: HeldReport, b: HeldReport) -> bool:
    """Same accused party, mirror accusations, or a neutral or unattributed report on either side."""
    if a.source_party == NEUTRAL or b.source_party == NEUTRAL:
        return True
    if a.accused_party is None or b.accused_party is None:
        return True
    if a.accused_party == b.accused_party:
        return True
    return a.source_party == b.accused_party and b.source_party == a.accused_party


def _point_in_sector(point: HeldReport, sector: str | None, ceasefire: Ceasefire) -> bool:
    if sector is None or point.lat is None or point.lon is None:
        return False
    found: Sector | None = ceasefire.sector(sector)
    return found is not None and found.contains(point.lat, point.lon)


def explain(a: HeldReport, b: HeldReport, ceasefire: Ceasefire) -> Link:
    """Apply the link rule of `ceasefire` to one pair (order does not matter)."""
    settings = ceasefire.link
    gap_us = abs(a.observed_us - b.observed_us)
    gap = gap_us / MINUTE_US
    if gap_us > round(settings.window_minutes * MINUTE_US):
        return Link(False, "time", gap)
    if not parties_agree(a, b):
        return Link(False, "parties", gap)
    if a.lat is not None and a.lon is not None and b.lat is not None and b.lon is not None:
        # Both located: the distance alone decides; a sector is the vaguer of the two facts.
        km = great_circle_km(a.lat, a.lon, b.lat, b.lon)
        limit = settings.distance_km + a.precision_km + b.precision_km
        return Link(km <= limit, "distance" if km <= limit else "place", gap, km)
    if a.sector is not None and a.sector == b.sector:
        return Link(True, "sector", gap)
    # Here at most one of the two is located: its point against the other's sector.
    if _point_in_sector(b, a.sector, ceasefire) or _point_in_sector(a, b.sector, ceasefire):
        return Link(True, "sector_contains", gap)
    return Link(False, "place", gap)
