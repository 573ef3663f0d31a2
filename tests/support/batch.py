"""The batch definition of incidents, written plainly for tests: the link rule over every pair (within
the time window) and connected components. Independent of services/correlate on purpose."""

from __future__ import annotations

from datetime import timedelta

from schemas.ceasefire import NEUTRAL, Ceasefire, great_circle_km
from schemas.report import AcceptedReport

Key = tuple[str, str]


def links(a: AcceptedReport, b: AcceptedReport, ceasefire: Ceasefire) -> bool:
    rule = ceasefire.link
    if abs(a.observed_at - b.observed_at) > timedelta(minutes=rule.window_minutes):
        return False
    if not (
        NEUTRAL in (a.source_party, b.source_party)
        or a.accused_party is None
        or b.accused_party is None
        or a.accused_party == b.accused_party
        or (a.source_party == b.accused_party and b.source_party == a.accused_party)
    ):
        return False
    pa, pb = a.location, b.location
    if pa.lat is not None and pb.lat is not None and pa.lon is not None and pb.lon is not None:
        return great_circle_km(pa.lat, pa.lon, pb.lat, pb.lon) <= rule.distance_km + pa.precision_km + pb.precision_km
    if pa.sector is not None and pa.sector == pb.sector:
        return True
    for named, point in ((pa, pb), (pb, pa)):
        sector = ceasefire.sector(named.sector) if named.sector else None
        if sector is not None and point.lat is not None and point.lon is not None and sector.contains(point.lat, point.lon):
            return True
    return False


def components(reports: list[AcceptedReport], ceasefire: Ceasefire) -> set[frozenset[Key]]:
    ordered = sorted(reports, key=lambda r: r.observed_at)
    parent = list(range(len(ordered)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    window = timedelta(minutes=ceasefire.link.window_minutes)
    for i, a in enumerate(ordered):
        for j in range(i + 1, len(ordered)):
            if ordered[j].observed_at - a.observed_at > window:
                break
            if links(a, ordered[j], ceasefire):
                parent[find(i)] = find(j)
    groups: dict[int, set[Key]] = {}
    for i, r in enumerate(ordered):
        groups.setdefault(find(i), set()).add(r.identity)
    return {frozenset(g) for g in groups.values()}


def current(reports: list[AcceptedReport]) -> list[AcceptedReport]:
    """The current revision of every report (the highest), without the retracted ones: what the batch
    definition is applied to once reports can be corrected (docs/reports.md, "Revisions and retractions")."""
    newest: dict[Key, AcceptedReport] = {}
    for report in reports:
        held = newest.get(report.identity)
        if held is None or report.revision > held.revision:
            newest[report.identity] = report
    return [r for r in newest.values() if r.status != "retracted"]
