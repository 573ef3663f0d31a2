"""The link rule: when two accepted reports of one ceasefire describe the same incident.

Pure and symmetric. Two reports link when they are close in event time, close in place and their
parties agree (docs/link-rule.md). `explain` says why or why not, because an incident publishes the
explanation of every link that built it. Reports are held as `HeldReport`, a slotted record of
the facts the rule and the incident fold need, so a hot ceasefire does not hold pydantic models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from schemas.ceasefire import EARTH_RADIUS_KM, NEUTRAL, Ceasefire, Sector
from schemas.incident import ReportLink
from schemas.report import AcceptedReport, ViolationType
from services.correlate.trusted import compact

if TYPE_CHECKING:
    from services.correlate.fold import IncidentState

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
MINUTE_US = 60_000_000
VIOLATION_ORDER = tuple(sorted(ViolationType))  # as an incident lists them; bit i of a type mask
_TYPE_BIT = {violation.value: 1 << i for i, violation in enumerate(VIOLATION_ORDER)}
DIAMETER_KM = 2 * EARTH_RADIUS_KM  # exact: doubling a float only moves its exponent

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
    revision: int = 1  # of the report as held: a higher one replaces it (Correlator.add)
    record: ReportLink | None = None  # built once, when first published
    observed: datetime | None = None  # observed_at, kept when the report came with it
    incident: IncidentState | None = None  # the open incident holding it (None: not held)
    # Derived once from the fields above (a report is compared and published many times over):
    vector: tuple[float, float, float] | None = field(default=None, init=False)  # unit vector of the point
    weighted: tuple[float, float, float] | None = field(default=None, init=False)  # vector / precision²
    point: tuple[float, float, float, float] | None = field(default=None, init=False)  # vector, precision_km
    phi: float = field(default=0.0, init=False)  # latitude in radians, for the haversine
    cos_phi: float = field(default=0.0, init=False)
    order: tuple[int, str, str] = field(default=(0, "", ""), init=False)  # see sort_key
    key: tuple[str, str] = field(default=("", ""), init=False)  # (source, report_id): the identity
    type_bit: int = field(default=0, init=False)  # of the violation type, see VIOLATION_ORDER

    def __post_init__(self) -> None:
        self.order = (self.observed_us, self.source, self.report_id)
        self.key = (self.source, self.report_id)
        self.type_bit = _TYPE_BIT[self.violation_type._value_]  # by its string: an enum hashes in Python
        if self.lat is not None and self.lon is not None:
            # The same expressions great_circle_km and the incident centre evaluate: the same floats.
            lat, lon = math.radians(self.lat), math.radians(self.lon)
            self.phi, self.cos_phi = lat, math.cos(lat)
            vx, vy, vz = math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)
            self.vector = (vx, vy, vz)
            weight = 1.0 / (self.precision_km * self.precision_km)
            self.weighted = (weight * vx, weight * vy, weight * vz)
            self.point = (vx, vy, vz, self.precision_km)

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
            revision=report.revision,
            observed=report.observed_at,  # UTC, like from_epoch_us(observed_us): the same datetime
        )

    @property
    def observed_at(self) -> datetime:
        if self.observed is None:
            self.observed = from_epoch_us(self.observed_us)
        return self.observed

    @property
    def sort_key(self) -> tuple[int, str, str]:
        """The order of an incident's `reports`: (observed_at, source, report_id)."""
        return self.order

    def link_record(self) -> ReportLink:
        """The published form; cached because a report is republished with every change of its incident."""
        if self.record is None:
            # Not validated again: every value already has the type ReportLink validation gives it.
            self.record = compact(
                ReportLink,
                {
                    "source": self.source,
                    "report_id": self.report_id,
                    "source_party": self.source_party,
                    "accused_party": self.accused_party,
                    "observed_at": self.observed_at,
                    "violation_type": self.violation_type,
                    "sector": self.sector,
                    "lat": self.lat,
                    "lon": self.lon,
                    "precision_km": self.precision_km,
                    "killed": self.killed,
                    "injured": self.injured,
                    "ingested_at": self.ingested_at,
                    "linked_to": self.linked_to,
                    "distance_km": self.distance_km,
                    "gap_minutes": self.gap_minutes,
                    "late": self.late,
                    "revision": self.revision,
                },
            )
        return self.record

    def unlink(self) -> None:
        """First of its incident again (its incident was rebuilt: Correlator._pieces)."""
        self.linked_to = self.distance_km = self.gap_minutes = None
        self.record = None

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
    return LinkRule(ceasefire).explain(a, b)


def great_circle_between(a: HeldReport, b: HeldReport) -> float:
    """`great_circle_km(a.lat, a.lon, b.lat, b.lon)` from the trigonometry each report keeps: the same float."""
    dp, dl = b.phi - a.phi, math.radians(b.lon - a.lon)  # type: ignore[operator]
    h = math.sin(dp / 2) ** 2 + a.cos_phi * b.cos_phi * math.sin(dl / 2) ** 2
    return DIAMETER_KM * math.asin(min(1.0, math.sqrt(h)))


class LinkRule:
    """The link rule of one ceasefire, its settings read once: a report is checked against many."""

    def __init__(self, ceasefire: Ceasefire) -> None:
        self.ceasefire = ceasefire
        self.window_us = round(ceasefire.link.window_minutes * MINUTE_US)
        self.distance_km = ceasefire.link.distance_km

    def explain(self, a: HeldReport, b: HeldReport) -> Link:
        """The verdict on one pair (order does not matter), with the clause that decided it."""
        gap_us = abs(a.observed_us - b.observed_us)
        gap = gap_us / MINUTE_US
        if gap_us > self.window_us:
            return Link(False, "time", gap)
        if not parties_agree(a, b):
            return Link(False, "parties", gap)
        if a.vector is not None and b.vector is not None:
            # Both located: the distance alone decides; a sector is the vaguer of the two facts.
            km = great_circle_between(a, b)
            if km <= self.distance_km + a.precision_km + b.precision_km:
                return Link(True, "distance", gap, km)
            return Link(False, "place", gap, km)
        if a.sector is not None and a.sector == b.sector:
            return Link(True, "sector", gap)
        # Here at most one of the two is located: its point against the other's sector.
        ceasefire = self.ceasefire
        if _point_in_sector(b, a.sector, ceasefire) or _point_in_sector(a, b.sector, ceasefire):
            return Link(True, "sector_contains", gap)
        return Link(False, "place", gap)
