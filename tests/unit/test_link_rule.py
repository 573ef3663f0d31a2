"""The link rule, clause by clause, with its boundaries (docs/link-rule.md)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest

from schemas.ceasefire import Ceasefire, LinkSettings, Registry, great_circle_km
from schemas.report import AcceptedReport
from services.correlate.link import HeldReport, explain, parties_agree
from tests.support.reports import START, at, report

POONCH = {"lat": 33.77, "lon": 74.09}  # sector centre, radius 20 km


@pytest.fixture
def ceasefire(registry: Registry) -> Ceasefire:
    found = registry.get("in-pk-2025-05-10")
    assert found is not None
    return found


def held(**overrides: Any) -> HeldReport:
    doc = {**report(**{"observed_at": at(0), **overrides}), "ingested_at": at(600)}
    return HeldReport.from_accepted(AcceptedReport.model_validate(doc))


def sector_only(sector: str, **overrides: Any) -> HeldReport:
    return held(location={"sector": sector}, **overrides)


def located(lat: float, lon: float, precision_km: float = 1.0, **overrides: Any) -> HeldReport:
    return held(location={"lat": lat, "lon": lon, "precision_km": precision_km}, **overrides)


def both_ways(a: HeldReport, b: HeldReport, ceasefire: Ceasefire) -> bool:
    forward, backward = explain(a, b, ceasefire), explain(b, a, ceasefire)
    assert forward == backward, "the rule is symmetric"
    return forward.linked


# -- time ------------------------------------------------------------------------------------------


def test_exactly_the_window_apart_links(ceasefire: Ceasefire) -> None:
    link = explain(held(observed_at=at(0)), held(report_id="b", observed_at=at(30)), ceasefire)
    assert link.linked
    assert link.gap_minutes == 30.0
    assert link.distance_km == 0.0


def test_a_microsecond_over_the_window_does_not_link(ceasefire: Ceasefire) -> None:
    later = (START + timedelta(minutes=30, microseconds=1)).isoformat()
    link = explain(held(observed_at=at(0)), held(report_id="b", observed_at=later), ceasefire)
    assert not link.linked
    assert link.reason == "time"


def test_time_zones_do_not_matter(ceasefire: Ceasefire) -> None:
    ist = held(observed_at="2025-05-10T18:00:00+05:30")  # 12:30 UTC
    utc = held(report_id="b", observed_at="2025-05-10T12:00:00Z")
    assert explain(ist, utc, ceasefire).gap_minutes == 30.0


# -- place: coordinates -----------------------------------------------------------------------------


def _exact_distance_settings(km: float, precisions: float) -> LinkSettings:
    """Settings whose limit `distance_km + p + p` equals `km` in floating point."""
    distance = km - 2 * precisions
    while distance + precisions + precisions < km:
        distance = math.nextafter(distance, math.inf)
    while distance + precisions + precisions > km:
        distance = math.nextafter(distance, -math.inf)
    assert distance + precisions + precisions == km
    return LinkSettings(distance_km=distance)


def test_exactly_at_the_distance_limit_links_and_just_beyond_does_not(ceasefire: Ceasefire) -> None:
    a, b = located(33.0, 74.0, 1.5), located(33.1, 74.0, 1.5, report_id="b")
    km = great_circle_km(33.0, 74.0, 33.1, 74.0)
    at_limit = ceasefire.model_copy(update={"link": _exact_distance_settings(km, 1.5)})
    link = explain(a, b, at_limit)
    assert link.linked and link.reason == "distance"
    assert link.distance_km == km
    just_short = LinkSettings(distance_km=math.nextafter(at_limit.link.distance_km, -math.inf))
    assert not both_ways(a, b, ceasefire.model_copy(update={"link": just_short}))


def test_precision_widens_the_reach(ceasefire: Ceasefire) -> None:
    # about 22.2 km apart: beyond 10 + 1 + 1, within 10 + 7 + 7
    assert not both_ways(located(33.0, 74.0, 1), located(33.2, 74.0, 1, report_id="b"), ceasefire)
    assert both_ways(located(33.0, 74.0, 7), located(33.2, 74.0, 7, report_id="b"), ceasefire)


def test_with_coordinates_on_both_sides_a_shared_sector_is_not_enough(ceasefire: Ceasefire) -> None:
    # both inside Poonch (radius 20 km), about 33 km apart
    a = held(location={"lat": 33.62, "lon": 74.09, "sector": "Poonch"})
    b = held(report_id="b", location={"lat": 33.92, "lon": 74.09, "sector": "Poonch"})
    link = explain(a, b, ceasefire)
    assert not link.linked and link.reason == "place"
    assert link.distance_km == pytest.approx(33.36, abs=0.01)


# -- place: sectors ---------------------------------------------------------------------------------


def test_sector_only_reports_of_the_same_sector_link(ceasefire: Ceasefire) -> None:
    link = explain(sector_only("Poonch"), sector_only("Poonch", report_id="b", observed_at=at(12)), ceasefire)
    assert link.linked and link.reason == "sector"
    assert link.distance_km is None
    assert link.gap_minutes == 12.0


def test_sector_only_reports_of_different_sectors_do_not_link(ceasefire: Ceasefire) -> None:
    # neighbouring sectors whose discs overlap: still two places
    assert not both_ways(sector_only("Poonch"), sector_only("Rajouri", report_id="b"), ceasefire)


def test_a_sector_only_report_links_to_coordinates_inside_its_sector(ceasefire: Ceasefire) -> None:
    inside = located(POONCH["lat"] + 0.15, POONCH["lon"], report_id="b")  # about 16.7 km from the centre
    link = explain(sector_only("Poonch"), inside, ceasefire)
    assert link.linked and link.reason == "sector_contains"
    assert link.distance_km is None
    assert both_ways(inside, sector_only("Poonch"), ceasefire)


def test_a_sector_only_report_does_not_link_to_coordinates_outside_its_sector(ceasefire: Ceasefire) -> None:
    outside = located(POONCH["lat"] + 0.19, POONCH["lon"], report_id="b")  # about 21.1 km, radius 20
    assert not both_ways(sector_only("Poonch"), outside, ceasefire)


def test_coordinates_outside_the_sector_still_link_when_they_name_it(ceasefire: Ceasefire) -> None:
    outside = {"lat": POONCH["lat"] + 0.3, "lon": POONCH["lon"], "sector": "Poonch"}  # 33 km from the centre
    named = held(report_id="b", location=outside)
    link = explain(sector_only("Poonch"), named, ceasefire)
    assert link.linked and link.reason == "sector"


def test_coordinates_inside_a_sector_link_to_it_whatever_sector_they_name(ceasefire: Ceasefire) -> None:
    # Poonch and Rajouri overlap; a Rajouri-named point inside Poonch's disc links to a Poonch-only report
    point = held(report_id="b", location={"lat": 33.64, "lon": 74.15, "sector": "Rajouri"})
    assert ceasefire.sector("Poonch").contains(33.64, 74.15)  # type: ignore[union-attr]
    assert both_ways(sector_only("Poonch"), point, ceasefire)


# -- parties ----------------------------------------------------------------------------------------


def test_the_same_accused_party_links(ceasefire: Ceasefire) -> None:
    assert both_ways(held(), held(source="in.bsf", report_id="b"), ceasefire)


def test_mirror_accusations_link(ceasefire: Ceasefire) -> None:
    pk = held(source="pk.ispr", report_id="b", source_party="PK", accused_party="IN")
    assert both_ways(held(), pk, ceasefire)


def test_a_neutral_source_links_to_either_side(ceasefire: Ceasefire) -> None:
    un = held(source="un.unmogip", report_id="b", source_party="NEUTRAL", accused_party="IN")
    pk = held(source="pk.ispr", report_id="c", source_party="PK", accused_party="IN")
    assert both_ways(held(), un, ceasefire)
    assert both_ways(pk, un, ceasefire)


def test_an_unattributed_report_links_to_either_side(ceasefire: Ceasefire) -> None:
    nobody = held(source="pk.ispr", report_id="b", source_party="PK", accused_party=...)
    assert nobody.accused_party is None
    assert both_ways(held(), nobody, ceasefire)


def test_three_parties_accusations_that_neither_match_nor_mirror_do_not_link(ceasefire: Ceasefire) -> None:
    a_accuses_b = held(source_party="A", accused_party="B")
    c_accuses_a = held(source="c.army", report_id="b", source_party="C", accused_party="A")
    c_accuses_b = held(source="c.army", report_id="c", source_party="C", accused_party="B")
    assert not parties_agree(a_accuses_b, c_accuses_a)
    link = explain(a_accuses_b, c_accuses_a, ceasefire)
    assert not link.linked and link.reason == "parties"
    assert both_ways(a_accuses_b, c_accuses_b, ceasefire)


def test_half_a_mirror_is_not_a_mirror() -> None:
    a_accuses_b = held(source_party="A", accused_party="B")
    b_accuses_c = held(source="b.army", report_id="b", source_party="B", accused_party="C")
    assert not parties_agree(a_accuses_b, b_accuses_c)
    assert not parties_agree(b_accuses_c, a_accuses_b)


# -- every clause must hold ------------------------------------------------------------------------


def test_close_in_place_but_not_in_time_does_not_link(ceasefire: Ceasefire) -> None:
    later = sector_only("Poonch", report_id="b", observed_at=at(31))
    assert not both_ways(sector_only("Poonch"), later, ceasefire)


def test_close_in_time_but_not_in_place_does_not_link(ceasefire: Ceasefire) -> None:
    assert not both_ways(sector_only("Poonch"), sector_only("Kupwara", report_id="b"), ceasefire)
