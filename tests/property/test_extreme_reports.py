"""Any report the schema accepts goes through correlation, the alert rules and fragility without an
exception, and nothing it produces holds NaN or an infinity (issue 16: a precision of 1e-160 published
a "mutual" incident at (45.0, 45.0) with a radius of 20,015 km; 1e-170 divided by zero).

Extreme but valid: coordinates at the poles and on the antimeridian, the finest and coarsest
precision, the largest casualty counts, reports far apart and thousands in one place.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.ceasefire import NEUTRAL
from schemas.incident import Incident
from schemas.report import MAX_CASUALTIES, MAX_PRECISION_KM, MIN_PRECISION_KM, AcceptedReport
from services.alert.rules import AlertEngine
from services.correlate.state import Correlator
from tests.support.ceasefires import three_parties

START = datetime(2025, 5, 10, 12, 0, tzinfo=UTC)
CEASEFIRE = three_parties("abc-extreme", east=True)  # no bounding box: anywhere on Earth is inside
SOURCES = [("a.army", "A", "B"), ("b.army", "B", "A"), ("c.army", "C", None), ("obs.un", NEUTRAL, None)]

LATITUDES = st.one_of(
    st.sampled_from([-90.0, 90.0, -89.999999, 89.999999, 0.0, 33.2, 33.2000001]),
    st.floats(-90, 90, allow_nan=False, allow_infinity=False),
)
LONGITUDES = st.one_of(
    st.sampled_from([-180.0, 180.0, -179.999999, 179.999999, 0.0, 74.1, 74.1000001]),
    st.floats(-180, 180, allow_nan=False, allow_infinity=False),
)
PRECISIONS = st.one_of(
    st.sampled_from([MIN_PRECISION_KM, MAX_PRECISION_KM, 0.010000001, 1.0]),
    st.floats(MIN_PRECISION_KM, MAX_PRECISION_KM, allow_nan=False),
)
COUNTS = st.one_of(st.none(), st.sampled_from([0, 1, MAX_CASUALTIES]), st.integers(0, MAX_CASUALTIES))


@st.composite
def a_report(draw: st.DrawFn, n: int) -> AcceptedReport:
    source, party, accused = draw(st.sampled_from(SOURCES))
    where: dict[str, Any] = {"precision_km": draw(PRECISIONS)}
    if draw(st.booleans()):
        where |= {"lat": draw(LATITUDES), "lon": draw(LONGITUDES)}
    if "lat" not in where or draw(st.booleans()):
        where["sector"] = draw(st.sampled_from(["North", "South", "East"]))
    observed = START + timedelta(seconds=draw(st.integers(0, 3 * 24 * 3600)))
    doc = {
        "report_id": f"r{n}",
        "source": source,
        "source_party": party,
        "accused_party": accused,
        "ceasefire_id": CEASEFIRE.id,
        "observed_at": observed,
        "location": where,
        "violation_type": draw(st.sampled_from(["small_arms", "artillery", "missile", "air_strike", "other"])),
        "casualties": {"killed": draw(COUNTS), "injured": draw(COUNTS), "civilian": draw(st.booleans())},
        "ingested_at": observed,
    }
    return AcceptedReport.model_validate(doc)


def finite(value: Any, path: str = "$") -> list[str]:
    """Paths of every NaN or infinite number in a JSON-like value."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in finite(v, f"{path}.{k}")]
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in finite(v, f"{path}[{i}]")]
    return []


def run(reports: list[AcceptedReport]) -> list[Incident]:
    """Correlate, then feed every incident version to the alert engine, as the stages do."""
    correlator = Correlator(CEASEFIRE)
    engine = AlertEngine(CEASEFIRE)
    published: list[Incident] = []
    for report in reports:
        changed = correlator.add(report)
        correlator.evict()
        published.extend(changed)
        for incident in changed:
            for alert in engine.observe(incident):
                assert finite(alert.model_dump(mode="python")) == [], alert
        if correlator.watermark is not None:
            for alert in engine.advance(correlator.watermark):
                assert finite(alert.model_dump(mode="python")) == [], alert
        snapshot = engine.fragility()
        assert finite(snapshot.model_dump(mode="python")) == [], snapshot
        assert 0 <= snapshot.index <= 100
    correlator.take_changes()
    engine.take_changes()
    for incident in {i.incident_id: i for i in published}.values():  # the last version of each
        assert finite(incident.model_dump(mode="python")) == [], incident
        if incident.location is not None:
            assert -90 <= incident.location.lat <= 90 and -180 <= incident.location.lon <= 180
            # Half the Earth's circumference at most. (Reports naming one sector link by it whatever their
            # coordinates, so without a bounding box an incident may span the globe: not bounded here.)
            assert 0 <= incident.location.radius_km <= 20_016 + MAX_PRECISION_KM
    return published


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.integers(1, 40).flatmap(lambda n: st.tuples(*(a_report(i) for i in range(n)))))
def test_any_valid_reports_give_finite_incidents_alerts_and_fragility(reports: tuple[AcceptedReport, ...]) -> None:
    run(list(reports))


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(LATITUDES, LONGITUDES, PRECISIONS)
def test_thousands_of_reports_in_one_place(lat: float, lon: float, precision: float) -> None:
    reports = []
    for n in range(2_000):
        source, party, accused = SOURCES[n % len(SOURCES)]
        observed = START + timedelta(seconds=n)
        reports.append(
            AcceptedReport.model_validate(
                {
                    "report_id": f"same-{n}",
                    "source": source,
                    "source_party": party,
                    "accused_party": accused,
                    "ceasefire_id": CEASEFIRE.id,
                    "observed_at": observed,
                    "location": {"lat": lat, "lon": lon, "precision_km": precision},
                    "violation_type": "artillery",
                    "casualties": {"killed": MAX_CASUALTIES, "injured": MAX_CASUALTIES},
                    "ingested_at": observed,
                }
            )
        )
    published = run(reports)
    final = {i.incident_id: i for i in published}
    assert len([i for i in final.values() if i.status != "merged"]) >= 1
