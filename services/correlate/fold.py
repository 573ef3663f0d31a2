"""The incident fold: what an incident says, computed from the reports it holds.

Every figure is a function of the set of member reports alone (never of arrival order or merge
history), so a rebuilt state publishes exactly what the live one would. The figures are kept as
reports join (`IncidentState`), not recomputed over every report at each publication: an incident
is republished on every change, with all of its reports.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import operator
from dataclasses import dataclass, field
from datetime import datetime

from schemas.ceasefire import NEUTRAL
from schemas.incident import RUNG, CasualtyRange, Incident, ReportLink, Severity, Status
from schemas.report import ViolationType
from services.correlate.centre import LocatedReports
from services.correlate.link import VIOLATION_ORDER, HeldReport
from services.correlate.trusted import trusted


def incident_id(ceasefire_id: str, source: str, report_id: str) -> str:
    """Stable id from the report that opened the incident: the same stream always names it the same."""
    material = "\x1f".join((ceasefire_id, source, report_id)).encode()
    return "inc-" + hashlib.blake2b(material, digest_size=8).hexdigest()


@dataclass(slots=True, eq=False)
class IncidentState:
    """One open incident: its identity, its version, its reports in publication order, and what they say.

    An incident's reports only ever grow (a report joins, an incident merges in; eviction drops the
    whole incident), so what it says is kept up to date as reports arrive instead of recomputed over
    all of them at each publication: sets, minima and maxima do not depend on the order, and the
    centre keeps its sums in publication order (services/correlate/centre.py).
    """

    incident_id: str
    version: int = 0  # of the last published record; 0 before the first
    members: list[HeldReport] = field(default_factory=list)  # sorted by HeldReport.sort_key
    absorbed: list[str] = field(default_factory=list)  # ids of incidents merged into this one
    first_us: int = 0
    last_us: int = 0
    record: Incident | None = None  # the last published record, for the read API
    # The members' published records in the same order; None: to be listed again at the next publication
    # (after a restore, a merge, or a change of some member's link).
    records: list[ReportLink] | None = None
    first_at: datetime | None = None  # first_us and last_us as datetimes (None only while empty)
    last_at: datetime | None = None
    located: LocatedReports = field(default_factory=LocatedReports)
    unlocated: int = 0  # members without coordinates
    # Names as published: sorted, unique (they rarely change once an incident has a few reports).
    sectors: tuple[str, ...] = ()
    reporting_parties: tuple[str, ...] = ()
    accused_parties: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    violation_types: int = 0  # a mask of HeldReport.type_bit
    # "source party\x1faccused" of non-neutral reports → the one source that made it, or "" for several;
    # a dict of strings is no work for the garbage collector
    accusations: dict[str, str] = field(default_factory=dict)
    neutral: bool = False  # a NEUTRAL source reports
    mutual: bool = False  # two parties accuse each other, through two sources at least
    late: bool = False
    killed: tuple[int, int] | None = None  # (low, high) once a report states a figure
    injured: tuple[int, int] | None = None
    casualties: CasualtyRange | None = None  # built from killed and injured; None when they changed

    def add(self, report: HeldReport) -> None:
        """A report joins: its place in publication order, and what it adds to every figure."""
        observed_us = report.observed_us
        if not self.members:
            self.first_us = self.last_us = observed_us
            self.first_at = self.last_at = report.observed_at
        elif observed_us < self.first_us:
            self.first_us, self.first_at = observed_us, report.observed_at
        elif observed_us > self.last_us:
            self.last_us, self.last_at = observed_us, report.observed_at
        members = self.members
        at = bisect.bisect_right(members, report.order, key=_sort_key)
        members.insert(at, report)
        if self.records is not None:
            self.records.insert(at, report.link_record())
        if report.vector is None:
            self.unlocated += 1
        else:  # its place among the located members
            self.located.add(report, at - sum(1 for m in members[:at] if m.vector is None) if self.unlocated else at)
        self._count(report)

    def absorb(self, other: IncidentState) -> None:
        """Take over another incident's reports (its identity is the caller's business)."""
        if not other.members:  # an incident revived after a torn write, its reports not back yet
            return
        if not self.members or other.first_us < self.first_us:
            self.first_us, self.first_at = other.first_us, other.first_at
        if not self.members or other.last_us > self.last_us:
            self.last_us, self.last_at = other.last_us, other.last_at
        self.members.extend(other.members)
        self.members.sort(key=_sort_key)  # two sorted runs: linear
        self.records = None
        self.unlocated += other.unlocated
        self.located.replace(self.members)
        for report in other.members:
            self._count(report)

    def _count(self, report: HeldReport) -> None:
        if report.sector is not None and report.sector not in self.sectors:
            self.sectors = _with(self.sectors, report.sector)
        self.violation_types |= report.type_bit
        party, accused = report.source_party, report.accused_party
        if party not in self.reporting_parties:
            self.reporting_parties = _with(self.reporting_parties, party)
        if report.source not in self.sources:
            self.sources = _with(self.sources, report.source)
        if accused is not None and accused not in self.accused_parties:
            self.accused_parties = _with(self.accused_parties, accused)
        if party == NEUTRAL:
            self.neutral = True
        elif accused is not None:
            source, made = report.source, party + "\x1f" + accused
            by = self.accusations.get(made)
            self.accusations[made] = source if by is None or by == source else ""
            # Tit-for-tat takes two: the mirror accusation from another source (one source filing for
            # both parties is no evidence that both accuse each other)
            mirror = self.accusations.get(accused + "\x1f" + party)
            self.mutual = self.mutual or (mirror is not None and mirror != source)
        self.late = self.late or report.late
        if report.killed is not None and self.killed != (killed := _widen(self.killed, report.killed)):
            self.killed, self.casualties = killed, None
        if report.injured is not None and self.injured != (injured := _widen(self.injured, report.injured)):
            self.injured, self.casualties = injured, None

    @property
    def precedence(self) -> tuple[int, str]:
        """Which incident survives a merge: the earliest observed, then the smaller id."""
        return (self.first_us, self.incident_id)


def _with(names: tuple[str, ...], name: str) -> tuple[str, ...]:
    """Sorted names with one more."""
    return tuple(sorted((*names, name))) if names else (name,)


def _widen(bounds: tuple[int, int] | None, value: int) -> tuple[int, int]:
    """(low, high) stretched to reach `value`."""
    if bounds is None:
        return (value, value)
    low, high = bounds
    return (value if value < low else low, value if value > high else high)


_sort_key = operator.attrgetter("order")  # HeldReport.sort_key, without a Python call per comparison


def _status(state: IncidentState) -> Status:
    """`corroborated` if a neutral source reports, `mutual` if two parties accuse each other, else `claimed`.

    Neutral wins: an observer's word is the strongest confirmation an incident can have."""
    return "corroborated" if state.neutral else "mutual" if state.mutual else "claimed"


@functools.cache
def _types(mask: int) -> tuple[tuple[ViolationType, ...], Severity]:
    """The violation types of a mask, sorted, and the highest rung among them."""
    types = tuple(t for i, t in enumerate(VIOLATION_ORDER) if mask >> i & 1)
    return types, max(RUNG[t] for t in types)


def _casualties(state: IncidentState) -> CasualtyRange:
    if state.casualties is None:
        killed: tuple[int | None, int | None] = state.killed or (None, None)
        injured: tuple[int | None, int | None] = state.injured or (None, None)
        values = {"killed_low": killed[0], "killed_high": killed[1], "injured_low": injured[0], "injured_high": injured[1]}
        state.casualties = trusted(CasualtyRange, values)
    return state.casualties


def publish(
    state: IncidentState,
    ceasefire_id: str,
    status: Status | None = None,
    merged_into: str | None = None,
    ordered_at: datetime | None = None,
) -> Incident:
    """The record for `state.version` (the caller bumps the version first); `ordered_at`: that of the
    report that made the version."""
    members = state.members
    records = state.records
    if records is None:
        records = state.records = [r.link_record() for r in members]
    violation_types, severity = _types(state.violation_types)
    # Not validated again: every value has the type Incident validation gives it (see trusted.py).
    return trusted(
        Incident,
        {
            "incident_id": state.incident_id,
            "ceasefire_id": ceasefire_id,
            "version": state.version,
            "status": status or _status(state),
            "merged_into": merged_into,
            "first_observed_at": state.first_at,
            "last_observed_at": state.last_at,
            "location": state.located.centre(),
            "sectors": list(state.sectors),
            "violation_types": list(violation_types),
            "severity": severity,
            "reporting_parties": list(state.reporting_parties),
            "accused_parties": list(state.accused_parties),
            "sources": list(state.sources),
            "reports": records.copy(),
            "report_count": len(members),
            "casualties": _casualties(state),
            "late": state.late,
            "ordered_at": ordered_at,
            "reciprocal": state.mutual,
        },
    )
