"""Validation rules, one by one: each bad record names its reason and the JSON path at fault."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from schemas.ceasefire import Registry
from schemas.report import AcceptedReport
from services.ingest.validate import Problem, Reason, Rules, Verdict, primary_reason, validate
from tests.support.reports import CEASEFIRE, encode, report

# The base report is observed at 12:10 UTC; ingest processes it 50 minutes later.
OBSERVED = datetime(2025, 5, 10, 12, 10, tzinfo=UTC)
NOW = datetime(2025, 5, 10, 13, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def rules(registry: Registry) -> Rules:
    return Rules(registry)


def check(doc: dict[str, Any] | bytes | None, rules: Rules, now: datetime = NOW) -> Verdict:
    raw = doc if doc is None or isinstance(doc, bytes) else encode(doc)
    return validate(raw, rules, now)


def accepted(doc: dict[str, Any] | bytes, rules: Rules, now: datetime = NOW) -> AcceptedReport:
    verdict = check(doc, rules, now)
    assert isinstance(verdict, AcceptedReport), verdict
    return verdict


def problems(
    doc: dict[str, Any] | bytes | None, rules: Rules, now: datetime = NOW
) -> list[tuple[Reason, str]]:
    verdict = check(doc, rules, now)
    assert isinstance(verdict, list), f"expected problems, got an accepted report: {verdict!r}"
    assert verdict, "an empty problem list would be neither accepted nor dead-lettered"
    return [(p.reason, p.path) for p in verdict]


# --- the accepted form ---------------------------------------------------------------------------


def test_valid_report_is_accepted_with_ingested_at_from_the_clock(rules: Rules) -> None:
    result = accepted(report(), rules)
    assert result.identity == ("in.army", "r-1")
    assert result.observed_at == OBSERVED
    assert result.ingested_at == NOW
    assert result.ceasefire_id == CEASEFIRE


def test_reporter_supplied_ingested_at_is_rejected(rules: Rules) -> None:
    assert problems(report(ingested_at="2025-05-10T12:00:00Z"), rules) == [(Reason.SCHEMA, "$.ingested_at")]


def test_timestamps_are_normalised_to_utc(rules: Rules) -> None:
    result = accepted(
        report(observed_at="2025-05-10T17:40:00+05:30", reported_at="2025-05-10T08:20:00-04:00"), rules
    )
    assert result.observed_at.utcoffset() == timedelta(0)
    assert result.reported_at is not None and result.reported_at.utcoffset() == timedelta(0)
    assert result.observed_at == OBSERVED
    assert result.reported_at == datetime(2025, 5, 10, 12, 20, tzinfo=UTC)
    written = orjson.loads(result.model_dump_json())
    assert written["observed_at"] == "2025-05-10T12:10:00Z"
    assert written["reported_at"] == "2025-05-10T12:20:00Z"


def test_killed_zero_is_kept_distinct_from_absent(rules: Rules) -> None:
    zero = accepted(report(casualties={"killed": 0}), rules)
    absent = accepted(report(casualties={"injured": 2}), rules)
    none = accepted(report(casualties=...), rules)
    assert zero.casualties is not None and zero.casualties.killed == 0
    assert absent.casualties is not None and absent.casualties.killed is None
    assert none.casualties is None
    assert orjson.loads(zero.model_dump_json())["casualties"]["killed"] == 0
    assert orjson.loads(absent.model_dump_json())["casualties"]["killed"] is None


def test_unknown_keys_inside_extensions_are_kept(rules: Rules) -> None:
    extensions = {"unit": "4 RAJRIF", "nested": {"grid": [1, 2, None]}, "Ünïcode": True}
    assert accepted(report(extensions=extensions), rules).extensions == extensions


def test_surrounding_whitespace_in_text_fields_is_stripped(rules: Rules) -> None:
    result = accepted(report(report_id="  r-1 ", description="  fire  "), rules)
    assert result.report_id == "r-1"
    assert result.description == "fire"


# --- the record as bytes ---------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [None, b""], ids=["none", "zero-bytes"])
def test_empty_value(raw: bytes | None, rules: Rules) -> None:
    assert problems(raw, rules) == [(Reason.EMPTY, "$")]


def _padded(size: int) -> bytes:
    """A valid report of exactly `size` bytes, padded inside `extensions`."""
    bare = encode(report(extensions={"pad": ""}))
    raw = encode(report(extensions={"pad": "x" * (size - len(bare))}))
    assert len(raw) == size
    return raw


def test_size_limit_is_64_kib_inclusive(rules: Rules) -> None:
    assert rules.max_bytes == 64 * 1024
    accepted(_padded(64 * 1024), rules)
    assert problems(_padded(64 * 1024 + 1), rules) == [(Reason.TOO_LARGE, "$")]


def test_size_limit_comes_from_the_rules(registry: Registry) -> None:
    assert problems(report(), Rules(registry, max_bytes=100)) == [(Reason.TOO_LARGE, "$")]


@pytest.mark.parametrize(
    "raw",
    [
        encode(report(description="café near the post")).decode().encode("latin-1"),
        b'{"report_id": "\xff\xfe"}',
        b'{"report_id": "r-1", "description": "caf\xc3',  # cut inside a two-byte character
    ],
    ids=["latin-1", "invalid-bytes", "cut-character"],
)
def test_not_utf8(raw: bytes, rules: Rules) -> None:
    assert problems(raw, rules) == [(Reason.NOT_UTF8, "$")]


@pytest.mark.parametrize(
    "raw",
    [encode(report())[:-1], encode(report())[:40], b"{not json", b'{"report_id": "r-1",}', b"NaN", b"\x00"],
    ids=["truncated-by-one", "truncated", "bare-word", "trailing-comma", "nan", "nul"],
)
def test_not_json(raw: bytes, rules: Rules) -> None:
    assert problems(raw, rules) == [(Reason.NOT_JSON, "$")]


@pytest.mark.parametrize("raw", [b"[]", b"[{}]", b"42", b'"report"', b"null", b"true"])
def test_json_that_is_not_an_object(raw: bytes, rules: Rules) -> None:
    assert problems(raw, rules) == [(Reason.SCHEMA, "$")]


# --- the schema --------------------------------------------------------------------------------------

SCHEMA_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "missing-report_id": (report(report_id=...), "$.report_id"),
    "missing-source": (report(source=...), "$.source"),
    "missing-source_party": (report(source_party=...), "$.source_party"),
    "missing-ceasefire_id": (report(ceasefire_id=...), "$.ceasefire_id"),
    "missing-observed_at": (report(observed_at=...), "$.observed_at"),
    "missing-location": (report(location=...), "$.location"),
    "missing-violation_type": (report(violation_type=...), "$.violation_type"),
    "killed-as-string": (report(casualties={"killed": "3"}), "$.casualties.killed"),
    "killed-as-float": (report(casualties={"killed": 3.0}), "$.casualties.killed"),
    "injured-as-bool": (report(casualties={"injured": True}), "$.casualties.injured"),
    "civilian-as-string": (report(casualties={"civilian": "yes"}), "$.casualties.civilian"),
    "lat-as-bool": (report(location__lat=True), "$.location.lat"),
    "lat-as-string": (report(location__lat="33.77"), "$.location.lat"),
    "observed_at-as-number": (report(observed_at=1746879000), "$.observed_at"),
    "observed_at-as-numeric-string": (report(observed_at="1746879000"), "$.observed_at"),
    "observed_at-naive": (report(observed_at="2025-05-10T12:10:00"), "$.observed_at"),
    "observed_at-date-only": (report(observed_at="2025-05-10"), "$.observed_at"),
    "observed_at-not-a-date": (report(observed_at="yesterday"), "$.observed_at"),
    "reported_at-naive": (report(reported_at="2025-05-10T12:20:00"), "$.reported_at"),
    "report_id-space": (report(report_id="r 1"), "$.report_id"),
    "report_id-slash": (report(report_id="r/1"), "$.report_id"),
    "report_id-empty": (report(report_id=""), "$.report_id"),
    "report_id-129-chars": (report(report_id="r" * 129), "$.report_id"),
    "source-leading-dot": (report(source=".in.army"), "$.source"),
    "source_party-lowercase": (report(source_party="in"), "$.source_party"),
    "unknown-violation_type": (report(violation_type="shelling"), "$.violation_type"),
    "21-evidence-urls": (report(evidence=[f"https://example.org/{i}" for i in range(21)]), "$.evidence"),
    "evidence-not-http": (report(evidence=["ftp://example.org/a"]), "$.evidence[0]"),
    "evidence-second-bad": (report(evidence=["https://example.org/a", "not a url"]), "$.evidence[1]"),
    "description-4001-chars": (report(description="x" * 4001), "$.description"),
    "unknown-top-level-field": (report(severity=3), "$.severity"),
    "unknown-location-field": (report(location__altitude=1200), "$.location.altitude"),
    "unknown-casualty-field": (report(casualties={"missing": 2}), "$.casualties.missing"),
    "extensions-not-object": (report(extensions=["a"]), "$.extensions"),
    "lat-without-lon": (report(location={"lat": 33.77, "sector": "Poonch"}), "$.location"),
    "lon-without-lat": (report(location={"lon": 74.09}), "$.location"),
    "neither-coordinates-nor-sector": (report(location={"place": "Krishna Ghati"}), "$.location"),
    "neutral-accused": (report(accused_party="NEUTRAL"), "$.accused_party"),
}


@pytest.mark.parametrize(("doc", "path"), SCHEMA_CASES.values(), ids=SCHEMA_CASES.keys())
def test_schema_error_names_its_path(doc: dict[str, Any], path: str, rules: Rules) -> None:
    assert problems(doc, rules) == [(Reason.SCHEMA, path)]


def test_limits_at_their_edge_are_accepted(rules: Rules) -> None:
    result = accepted(
        report(
            report_id="r" * 128,
            description="x" * 4000,
            evidence=[f"https://example.org/{i}" for i in range(20)],
            location={"lat": 33.0, "lon": 74, "precision_km": 25},  # a JSON integer is a number
        ),
        rules,
    )
    assert len(result.evidence) == 20
    assert result.location.lon == 74.0


def test_every_field_error_is_listed_with_its_path(rules: Rules) -> None:
    doc = report(
        report_id="bad id",
        casualties={"killed": "3"},
        location__lat=90.5,
        observed_at="2025-05-10T12:10:00",
        colour="red",
    )
    assert sorted(problems(doc, rules)) == sorted(
        [
            (Reason.SCHEMA, "$.report_id"),
            (Reason.SCHEMA, "$.casualties.killed"),
            (Reason.COORDINATES_OUT_OF_RANGE, "$.location.lat"),
            (Reason.SCHEMA, "$.observed_at"),
            (Reason.SCHEMA, "$.colour"),
        ]
    )
    verdict = check(doc, rules)
    assert isinstance(verdict, list)
    assert primary_reason(verdict) is Reason.COORDINATES_OUT_OF_RANGE


@pytest.mark.parametrize(
    ("location", "path"),
    [
        ({"lat": 90.0001, "lon": 74.0}, "$.location.lat"),
        ({"lat": -90.0001, "lon": 74.0}, "$.location.lat"),
        ({"lat": 33.0, "lon": -180.5}, "$.location.lon"),
        ({"lat": 33.0, "lon": 180.0001}, "$.location.lon"),
    ],
)
def test_coordinates_out_of_range(location: dict[str, float], path: str, rules: Rules) -> None:
    assert problems(report(location=location), rules) == [(Reason.COORDINATES_OUT_OF_RANGE, path)]


def test_both_coordinates_out_of_range_are_both_listed(rules: Rules) -> None:
    assert problems(report(location={"lat": 91, "lon": 181}), rules) == [
        (Reason.COORDINATES_OUT_OF_RANGE, "$.location.lat"),
        (Reason.COORDINATES_OUT_OF_RANGE, "$.location.lon"),
    ]


def test_self_accusation(rules: Rules) -> None:
    assert problems(report(accused_party="IN"), rules) == [(Reason.SELF_ACCUSATION, "$.accused_party")]
    neutral = report(source="un.unmogip", source_party="NEUTRAL", accused_party="NEUTRAL")
    assert problems(neutral, rules) == [(Reason.SELF_ACCUSATION, "$.accused_party")]


def test_event_times_that_cannot_be_expressed_in_utc_are_schema_errors(rules: Rules) -> None:
    # 00:00 at +01:00 on 1 January of year 1 is in year 0 in UTC: Python cannot hold it.
    early = report(observed_at="0001-01-01T00:00:00+01:00")
    late = report(reported_at="9999-12-31T23:59:59-05:00")
    assert problems(early, rules) == [(Reason.SCHEMA, "$.observed_at")]
    assert problems(late, rules) == [(Reason.SCHEMA, "$.reported_at")]


def test_extreme_but_valid_event_times_are_a_verdict_not_an_exception(rules: Rules) -> None:
    assert problems(report(reported_at="9999-12-31T23:59:59Z"), rules) == [
        (Reason.FUTURE_REPORTED_AT, "$.reported_at")
    ]
    assert problems(report(observed_at="9999-12-31T23:59:59Z"), rules) == [
        (Reason.FUTURE_OBSERVED_AT, "$.observed_at")
    ]
    assert problems(report(observed_at="0001-01-01T00:00:00Z"), rules) == [
        (Reason.BEFORE_CEASEFIRE, "$.observed_at")
    ]


# --- the registry ------------------------------------------------------------------------------------


def test_unknown_ceasefire(rules: Rules) -> None:
    expected = [(Reason.UNKNOWN_CEASEFIRE, "$.ceasefire_id")]
    assert problems(report(ceasefire_id="in-cn-2020"), rules) == expected


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"source_party": "CN", "accused_party": "PK"}, [(Reason.PARTY_NOT_IN_CEASEFIRE, "$.source_party")]),
        ({"source_party": "IL", "accused_party": "PK"}, [(Reason.PARTY_NOT_IN_CEASEFIRE, "$.source_party")]),
        ({"accused_party": "CN"}, [(Reason.PARTY_NOT_IN_CEASEFIRE, "$.accused_party")]),
        (
            {"source_party": "CN", "accused_party": "LB"},
            [
                (Reason.PARTY_NOT_IN_CEASEFIRE, "$.source_party"),
                (Reason.PARTY_NOT_IN_CEASEFIRE, "$.accused_party"),
            ],
        ),
    ],
    ids=["source-foreign", "source-of-another-ceasefire", "accused-foreign", "both"],
)
def test_parties_must_belong_to_the_ceasefire(
    overrides: dict[str, str], expected: list[tuple[Reason, str]], rules: Rules
) -> None:
    assert problems(report(**overrides), rules) == expected


@pytest.mark.parametrize("accused", ["PK", "IN", None])
def test_neutral_observers_may_report_and_accuse_either_party(accused: str | None, rules: Rules) -> None:
    result = accepted(report(source="un.unmogip", source_party="NEUTRAL", accused_party=accused), rules)
    assert result.source_party == "NEUTRAL"
    assert result.accused_party == accused


def test_unknown_sector(rules: Rules) -> None:
    expected = [(Reason.UNKNOWN_SECTOR, "$.location.sector")]
    assert problems(report(location={"sector": "Gotham"}), rules) == expected


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("poonch", "Poonch"),
        ("POONCH", "Poonch"),
        ("  poonch ", "Poonch"),
        ("baramulla/URI", "Baramulla/Uri"),
        ("Poonch", "Poonch"),
    ],
)
def test_sector_is_matched_case_insensitively_and_takes_the_registry_spelling(
    given: str, canonical: str, rules: Rules
) -> None:
    assert accepted(report(location={"sector": given}), rules).location.sector == canonical
    with_coordinates = accepted(report(location__sector=given), rules)
    assert with_coordinates.location.sector == canonical
    assert (with_coordinates.location.lat, with_coordinates.location.lon) == (33.77, 74.09)


@pytest.mark.parametrize(
    "location",
    [
        {"lat": 40.0, "lon": 74.0},
        {"lat": 33.0, "lon": 80.0},
        {"lat": 90.0, "lon": 74.0},
        {"lat": 31.4999, "lon": 74.0},
    ],
)
def test_outside_the_ceasefire_area(location: dict[str, float], rules: Rules) -> None:
    assert problems(report(location=location), rules) == [(Reason.OUTSIDE_CEASEFIRE_AREA, "$.location")]


def test_bounding_box_edges_are_inside(rules: Rules) -> None:
    accepted(report(location={"lat": 31.5, "lon": 72.5}), rules)
    accepted(report(location={"lat": 36.0, "lon": 76.5}), rules)


def test_registry_problems_are_all_listed(rules: Rules) -> None:
    doc = report(accused_party="CN", location={"lat": 40.0, "lon": 74.0, "sector": "Gotham"})
    assert problems(doc, rules) == [
        (Reason.PARTY_NOT_IN_CEASEFIRE, "$.accused_party"),
        (Reason.UNKNOWN_SECTOR, "$.location.sector"),
        (Reason.OUTSIDE_CEASEFIRE_AREA, "$.location"),
    ]


def test_another_registry_with_other_parties_and_sectors() -> None:
    other = Registry.model_validate(
        {
            "ceasefires": [
                {
                    "id": "aa-bb-2031",
                    "name": "A test ceasefire between Avalon and Brigadoon",
                    "effective_from": "2031-01-01T00:00:00Z",
                    "parties": [{"code": "AA", "name": "Avalon"}, {"code": "BB", "name": "Brigadoon"}],
                    "sectors": [{"name": "North Gate", "lat": -45.0, "lon": 170.0, "radius_km": 5}],
                }
            ]
        }
    )
    rules = Rules(other, max_future=timedelta(0))
    now = datetime(2031, 2, 1, tzinfo=UTC)
    doc = report(
        ceasefire_id="aa-bb-2031",
        source="aa.defence",
        source_party="AA",
        accused_party="BB",
        observed_at="2031-01-31T23:00:00Z",
        location={"sector": "north gate"},
    )
    result = accepted(doc, rules, now)
    assert (result.source_party, result.accused_party, result.location.sector) == ("AA", "BB", "North Gate")
    # No bounding box: coordinates anywhere on Earth are inside.
    accepted({**doc, "location": {"lat": 64.1, "lon": -21.9}}, rules, now)
    assert problems({**doc, "accused_party": "PK"}, rules, now) == [
        (Reason.PARTY_NOT_IN_CEASEFIRE, "$.accused_party")
    ]
    assert problems({**doc, "accused_party": "AA"}, rules, now) == [
        (Reason.SELF_ACCUSATION, "$.accused_party")
    ]
    assert problems({**doc, "location": {"sector": "Poonch"}}, rules, now) == [
        (Reason.UNKNOWN_SECTOR, "$.location.sector")
    ]
    assert problems(report(), rules, now) == [(Reason.UNKNOWN_CEASEFIRE, "$.ceasefire_id")]
    # max_future comes from the rules: here not even one second ahead is allowed.
    assert problems({**doc, "observed_at": "2031-02-01T00:00:01Z"}, rules, now) == [
        (Reason.FUTURE_OBSERVED_AT, "$.observed_at")
    ]


# --- time --------------------------------------------------------------------------------------------


def test_observed_at_up_to_ten_minutes_ahead_is_accepted(rules: Rules) -> None:
    now = OBSERVED - timedelta(minutes=10)
    assert accepted(report(), rules, now).observed_at == OBSERVED


def test_observed_at_more_than_ten_minutes_ahead_is_rejected(rules: Rules) -> None:
    now = OBSERVED - timedelta(minutes=10, seconds=1)
    assert problems(report(), rules, now) == [(Reason.FUTURE_OBSERVED_AT, "$.observed_at")]


def test_future_rule_compares_instants_not_wall_clock_text(rules: Rules) -> None:
    # 18:00+05:30 is 12:30 UTC: 30 minutes ahead of 12:00 UTC, whatever the offset says.
    noon = datetime(2025, 5, 10, 12, 0, tzinfo=UTC)
    assert problems(report(observed_at="2025-05-10T18:00:00+05:30"), rules, noon) == [
        (Reason.FUTURE_OBSERVED_AT, "$.observed_at")
    ]


def test_old_reports_are_not_rejected_for_age(rules: Rules) -> None:
    accepted(report(), rules, NOW + timedelta(days=365))


@pytest.mark.parametrize("before", [timedelta(0), timedelta(minutes=10)], ids=["equal", "within-skew"])
def test_reported_at_at_or_slightly_before_observed_at_is_accepted(before: timedelta, rules: Rules) -> None:
    # The clocks of the observer and the reporting desk may disagree by up to `max_future`.
    accepted(report(reported_at=(OBSERVED - before).isoformat()), rules)


def test_reported_at_before_observed_at_is_rejected(rules: Rules) -> None:
    doc = report(reported_at=(OBSERVED - timedelta(minutes=10, seconds=1)).isoformat())
    assert problems(doc, rules) == [(Reason.REPORTED_BEFORE_OBSERVED, "$.reported_at")]


def test_registry_and_time_problems_are_listed_together(rules: Rules) -> None:
    doc = report(accused_party="CN", reported_at="2025-05-10T11:00:00Z")
    assert problems(doc, rules, OBSERVED - timedelta(hours=1)) == [
        (Reason.PARTY_NOT_IN_CEASEFIRE, "$.accused_party"),
        (Reason.FUTURE_OBSERVED_AT, "$.observed_at"),
        (Reason.REPORTED_BEFORE_OBSERVED, "$.reported_at"),
    ]


# --- primary reason ----------------------------------------------------------------------------------


def _p(reason: Reason) -> Problem:
    return Problem(reason, "$", "")


@pytest.mark.parametrize(
    ("reasons", "primary"),
    [
        ([Reason.SCHEMA], Reason.SCHEMA),
        ([Reason.SCHEMA, Reason.SCHEMA], Reason.SCHEMA),
        ([Reason.SCHEMA, Reason.COORDINATES_OUT_OF_RANGE], Reason.COORDINATES_OUT_OF_RANGE),
        ([Reason.UNKNOWN_SECTOR, Reason.SCHEMA], Reason.UNKNOWN_SECTOR),
        ([Reason.PARTY_NOT_IN_CEASEFIRE, Reason.UNKNOWN_SECTOR], Reason.PARTY_NOT_IN_CEASEFIRE),
        ([Reason.NOT_JSON], Reason.NOT_JSON),
    ],
)
def test_primary_reason_is_the_first_specific_one(reasons: list[Reason], primary: Reason) -> None:
    assert primary_reason([_p(r) for r in reasons]) is primary


def test_problem_as_dict() -> None:
    problem = Problem(Reason.UNKNOWN_SECTOR, "$.location.sector", "no sector 'Gotham'")
    assert problem.as_dict() == {
        "reason": "unknown_sector",
        "path": "$.location.sector",
        "message": "no sector 'Gotham'",
    }


# --- what ingest accepts can be read back downstream -------------------------------------------------


def _nested(levels: int) -> dict[str, Any]:
    """`extensions` holding containers `levels` deep, counting `extensions` itself."""
    value: Any = "leaf"
    for _ in range(levels - 1):
        value = [value]
    return {"deep": value}


def test_extensions_sixteen_levels_deep_are_accepted_and_read_back(rules: Rules) -> None:
    result = accepted(report(extensions=_nested(16)), rules)
    assert AcceptedReport.model_validate_json(result.model_dump_json()) == result


def test_extensions_deeper_than_sixteen_levels_are_rejected(rules: Rules) -> None:
    # orjson reads up to 1024 levels, pydantic-core's JSON parser ~200: accepting this would publish a
    # record the next stage cannot decode.
    assert problems(report(extensions=_nested(17)), rules) == [(Reason.SCHEMA, "$.extensions")]
    deep = encode(report(extensions={"deep": "@"})).replace(b'"@"', b"[" * 1000 + b"]" * 1000)
    assert problems(deep, rules) == [(Reason.SCHEMA, "$.extensions")]
