"""What an incident says is kept up to date as reports join; it must equal a fold over all of its reports.

The oracle recomputes every figure of a published record from the record's own reports with the
formulas of docs/link-rule.md (the centre as the fold computed it before it was made incremental,
float for float), whatever the order of arrival, the merges and a rebuild from the stored entries.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.ceasefire import EARTH_RADIUS_KM, NEUTRAL
from schemas.incident import RUNG, Incident
from schemas.report import AcceptedReport
from services.correlate.state import Correlator
from services.runtime.codec import encode
from tests.support.ceasefires import three_parties

START = datetime(2025, 5, 10, 12, 0, tzinfo=UTC)
CEASEFIRE = three_parties("fold-test")
SOURCES = [("a.army", "A"), ("b.army", "B"), ("c.army", "C"), ("obs.un", NEUTRAL)]


@st.composite
def a_report(draw: st.DrawFn, n: int) -> AcceptedReport:
    source, party = draw(st.sampled_from(SOURCES))
    where: dict[str, Any] = {}
    kind = draw(st.sampled_from(["point", "point", "point", "sector", "both"]))
    if kind in ("point", "both"):
        where["lat"] = 33.0 + draw(st.integers(0, 30)) / 100 + draw(st.sampled_from([0, 1e-4, 3.7e-3]))
        where["lon"] = 74.0 + draw(st.integers(0, 30)) / 100
        where["precision_km"] = draw(st.sampled_from([0.5, 1.0, 2.0, 3.3, 5.0]))
    if kind in ("sector", "both"):
        where["sector"] = draw(st.sampled_from(["North", "South"]))
    casualties = draw(st.sampled_from([None, {}, {"killed": 0}, {"injured": 2}, {"killed": 3, "injured": 0}]))
    doc = {
        "report_id": f"r{n}",
        "source": source,
        "source_party": party,
        "accused_party": draw(st.sampled_from([None, *(p for p in ("A", "B", "C") if p != party)])),
        "ceasefire_id": CEASEFIRE.id,
        "observed_at": START + timedelta(minutes=draw(st.integers(0, 90)), seconds=draw(st.integers(0, 1))),
        "location": where,
        "violation_type": draw(st.sampled_from(["small_arms", "mortar", "drone", "missile", "sniper"])),
        "ingested_at": START,
    }
    if casualties is not None:
        doc["casualties"] = casualties
    return AcceptedReport.model_validate(doc)


@st.composite
def streams(draw: st.DrawFn, most: int) -> list[AcceptedReport]:
    return [draw(a_report(n)) for n in range(draw(st.integers(1, most)))]


def centre(incident: Incident) -> tuple[float, float, float] | None:
    """The centre as docs/link-rule.md defines it, summed in publication order."""
    located = [(r.lat, r.lon, r.precision_km) for r in incident.reports if r.lat is not None and r.lon is not None]
    if not located:
        return None
    vectors = []
    x = y = z = 0.0
    for lat_d, lon_d, precision in located:
        lat, lon = math.radians(lat_d), math.radians(lon_d)
        v = (math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat))
        vectors.append((v, precision))
        weight = 1.0 / (precision * precision)
        x += weight * v[0]
        y += weight * v[1]
        z += weight * v[2]
    norm = math.sqrt(x * x + y * y + z * z) or 1.0
    cx, cy, cz = x / norm, y / norm, z / norm
    widest = 0.0
    for (vx, vy, vz), precision in vectors:
        chord = math.sqrt((vx - cx) ** 2 + (vy - cy) ** 2 + (vz - cz) ** 2)
        widest = max(widest, 2 * EARTH_RADIUS_KM * math.asin(min(1.0, chord / 2)) + precision)
    lat_c = math.degrees(math.atan2(z, math.hypot(x, y)))
    lon_c = math.degrees(math.atan2(y, x))
    return (round(lat_c, 7), round(lon_c, 7), round(widest, 3))


def check(incident: Incident) -> None:
    """Every figure of `incident` is the fold of its reports (docs/link-rule.md, "What an incident says")."""
    reports = incident.reports
    assert [(r.observed_at, r.source, r.report_id) for r in reports] == sorted(
        (r.observed_at, r.source, r.report_id) for r in reports
    )
    assert incident.report_count == len(reports)
    accusations = {(r.source, r.source_party, r.accused_party) for r in reports if r.accused_party is not None}
    tit_for_tat = any(  # mirror accusations from two sources
        (party, accused) == (mirror_accused, mirror_party) and source != mirror_source
        for source, party, accused in accusations
        for mirror_source, mirror_party, mirror_accused in accusations
    )
    assert incident.reciprocal == tit_for_tat
    if incident.status != "merged":
        if any(r.source_party == NEUTRAL for r in reports):
            assert incident.status == "corroborated"
        elif tit_for_tat:
            assert incident.status == "mutual"
        else:
            assert incident.status == "claimed"
    assert incident.severity == max(RUNG[r.violation_type] for r in reports)
    assert incident.violation_types == sorted({r.violation_type for r in reports})
    assert incident.sectors == sorted({r.sector for r in reports if r.sector is not None})
    assert incident.reporting_parties == sorted({r.source_party for r in reports})
    assert incident.accused_parties == sorted({r.accused_party for r in reports if r.accused_party is not None})
    assert incident.sources == sorted({r.source for r in reports})
    assert incident.first_observed_at == min(r.observed_at for r in reports)
    assert incident.last_observed_at == max(r.observed_at for r in reports)
    assert incident.late == any(r.late for r in reports)
    killed = [r.killed for r in reports if r.killed is not None]
    injured = [r.injured for r in reports if r.injured is not None]
    c = incident.casualties
    assert (c.killed_low, c.killed_high) == ((min(killed), max(killed)) if killed else (None, None))
    assert (c.injured_low, c.injured_high) == ((min(injured), max(injured)) if injured else (None, None))
    where = incident.location
    assert (None if where is None else (where.lat, where.lon, where.radius_km)) == centre(incident)
    # and the record is what validating its own JSON gives back
    assert Incident.model_validate_json(encode(incident)) == incident


def store(entries: dict[str, str], changes: dict[str, str | None]) -> None:
    for key, value in changes.items():
        if value is None:
            entries.pop(key, None)
        else:
            entries[key] = value


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), reports=streams(most=30))
def test_every_published_record_is_the_fold_of_its_reports(data: st.DataObject, reports: list[AcceptedReport]) -> None:
    order = data.draw(st.permutations(reports))
    rebuild_at = data.draw(st.integers(0, len(order)))
    live = Correlator(CEASEFIRE)
    entries: dict[str, str] = {}
    for report in order[:rebuild_at]:
        for incident in live.add(report):
            check(incident)
        store(entries, live.take_changes())
    # A correlator rebuilt from the stored entries goes on publishing exactly what the live one does.
    rebuilt = Correlator(CEASEFIRE, entries.items())
    assert sorted(encode(i) for i in rebuilt.incidents()) == sorted(encode(i) for i in live.incidents())
    for report in order[rebuild_at:]:
        published = live.add(report)
        assert [encode(i) for i in rebuilt.add(report)] == [encode(i) for i in published]
        for incident in published:
            check(incident)


def test_the_centre_sums_in_publication_order_whatever_the_arrival() -> None:
    # Precisions whose weighted sums round differently in another order: the centre must not change.
    places = [(33.1, 74.1, 0.7), (33.1003, 74.1004, 3.1), (33.0998, 74.0991, 1.3), (33.1011, 74.1002, 0.9)]
    docs = [
        {
            "report_id": f"r{n}",
            "source": "a.army",
            "source_party": "A",
            "accused_party": "B",
            "ceasefire_id": CEASEFIRE.id,
            "observed_at": START + timedelta(minutes=n),
            "location": {"lat": lat, "lon": lon, "precision_km": precision},
            "violation_type": "mortar",
            "ingested_at": START,
        }
        for n, (lat, lon, precision) in enumerate(places)
    ]
    reports = [AcceptedReport.model_validate(doc) for doc in docs]
    last: list[bytes] = []
    for order in (reports, reports[::-1], [reports[2], reports[0], reports[3], reports[1]]):
        correlator = Correlator(CEASEFIRE)
        for report in order:
            incident = correlator.add(report)[0]
            check(incident)
        assert incident.report_count == len(places)
        last.append(encode(incident.model_copy(update={"version": 1, "incident_id": "x", "reports": []})))
    assert len(set(last)) == 1
