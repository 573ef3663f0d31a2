"""Every number and time in the contract has a bound, and every bound its own dead-letter reason.

Found by hostile input (issue 16): a `precision_km` of 1e-170 crash-looped correlation, 2⁶⁴−1 killed
reached an alert's text, a report from year 0001 was accepted, a key given twice turned a report into
another source's, and NUL passed into descriptions.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from schemas.ceasefire import Registry
from schemas.report import MAX_CASUALTIES, MIN_PRECISION_KM, AcceptedReport
from services.ingest.validate import Rules, validate
from tests.support.reports import encode, report

NOW = datetime(2025, 5, 10, 13, 0, tzinfo=UTC)  # the base report is observed at 12:10 UTC
EFFECTIVE = datetime(2025, 5, 10, 11, 30, tzinfo=UTC)  # the shipped in-pk ceasefire's start


@pytest.fixture(scope="module")
def rules(registry: Registry) -> Rules:
    return Rules(registry)


def verdict(raw: bytes, rules: Rules, now: datetime = NOW) -> AcceptedReport | list[tuple[str, str]]:
    result = validate(raw, rules, now)
    return result if isinstance(result, AcceptedReport) else [(p.reason.value, p.path) for p in result]


def reasons(doc: dict[str, Any] | bytes, rules: Rules, now: datetime = NOW) -> list[tuple[str, str]]:
    result = verdict(doc if isinstance(doc, bytes) else encode(doc), rules, now)
    assert isinstance(result, list), f"accepted: {result!r}"
    return result


def accepted(doc: dict[str, Any] | bytes, rules: Rules, now: datetime = NOW) -> AcceptedReport:
    result = verdict(doc if isinstance(doc, bytes) else encode(doc), rules, now)
    assert isinstance(result, AcceptedReport), result
    return result


# --- numbers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", [1e-170, 1e-160, 0.0, -1.0, MIN_PRECISION_KM / 2, 25.0001, 1e308])
def test_precision_out_of_range(precision: float, rules: Rules) -> None:
    assert reasons(report(location__precision_km=precision), rules) == [
        ("precision_out_of_range", "$.location.precision_km")
    ]


@pytest.mark.parametrize("precision", [MIN_PRECISION_KM, 0.5, 25])
def test_precision_within_range(precision: float, rules: Rules) -> None:
    assert accepted(report(location__precision_km=precision), rules).location.precision_km == precision


@pytest.mark.parametrize("field", ["killed", "injured"])
@pytest.mark.parametrize("count", [2**64 - 1, 2**63, MAX_CASUALTIES + 1, -1])
def test_casualties_out_of_range(field: str, count: int, rules: Rules) -> None:
    assert reasons(report(casualties={field: count}), rules) == [
        ("casualties_out_of_range", f"$.casualties.{field}")
    ]


def test_casualties_at_the_maximum_are_accepted(rules: Rules) -> None:
    assert accepted(report(casualties={"killed": MAX_CASUALTIES}), rules).casualties is not None


def test_a_huge_integer_beyond_any_bound_is_not_json(rules: Rules) -> None:
    raw = encode(report()).replace(b'"killed":0', b'"killed":' + b"9" * 400)
    assert reasons(raw, rules) in ([("not_json", "$")], [("casualties_out_of_range", "$.casualties.killed")])


# --- times -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("observed", ["0001-01-01T00:00:00Z", "1900-01-01T00:00:00Z", "2025-05-09T11:29:59Z"])
def test_observed_long_before_the_ceasefire(observed: str, rules: Rules) -> None:
    assert reasons(report(observed_at=observed), rules) == [("before_ceasefire", "$.observed_at")]


def test_observed_within_the_margin_before_the_ceasefire_is_accepted(rules: Rules) -> None:
    edge = (EFFECTIVE - rules.before_effective).isoformat()
    assert accepted(report(observed_at=edge), rules).observed_at == EFFECTIVE - timedelta(hours=24)


def test_the_margin_is_a_setting(registry: Registry) -> None:
    strict = Rules(registry, before_effective=timedelta(0))
    assert reasons(report(observed_at="2025-05-10T11:29:00Z"), strict) == [("before_ceasefire", "$.observed_at")]
    assert accepted(report(observed_at="2025-05-10T11:30:00Z"), strict)


def test_reported_in_the_future(rules: Rules) -> None:
    assert reasons(report(reported_at="2099-01-01T00:00:00Z"), rules) == [("future_reported_at", "$.reported_at")]


def test_reported_in_year_one_is_before_observed(rules: Rules) -> None:
    assert reasons(report(reported_at="0001-01-01T00:00:00Z"), rules) == [
        ("reported_before_observed", "$.reported_at")
    ]


@pytest.mark.parametrize(
    "text",
    [
        "2025-05-10T17:40:00+0530",  # offset without a colon
        "2025-05-10T17:40+05:30",  # no seconds
        "2025-05-10T17:40:00",  # no offset
        "2025-05-10",  # a date
        "20250510T174000Z",  # basic ISO 8601
        "2025-05-10T17:40:00+05:30x",  # trailing text
        "2025-05-10T17:40:00.Z",  # an empty fraction
        "1746881400",  # a Unix time
    ],
)
def test_not_rfc3339(text: str, rules: Rules) -> None:
    assert reasons(report(observed_at=text), rules) == [("schema", "$.observed_at")]


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2025-05-10T17:40:00+05:30", datetime(2025, 5, 10, 12, 10, tzinfo=UTC)),
        ("2025-05-10t12:10:00z", datetime(2025, 5, 10, 12, 10, tzinfo=UTC)),
        ("2025-05-10 12:10:00Z", datetime(2025, 5, 10, 12, 10, tzinfo=UTC)),
        ("2025-05-10T12:10:00.123456789Z", datetime(2025, 5, 10, 12, 10, 0, 123456, tzinfo=UTC)),
    ],
)
def test_rfc3339_forms(text: str, utc: datetime, rules: Rules) -> None:
    assert accepted(report(observed_at=text), rules).observed_at == utc


@pytest.mark.parametrize("text", ["2025-05-10T12:09:60Z", "2025-05-10T17:39:60.5+05:30"])
def test_a_leap_second_is_read_as_the_instant_before_it(text: str, rules: Rules) -> None:
    observed = accepted(report(observed_at=text), rules).observed_at
    assert observed == datetime(2025, 5, 10, 12, 9, 59, 999999, tzinfo=UTC)


def test_a_leap_second_keeps_its_order(rules: Rules) -> None:
    before = accepted(report(observed_at="2025-05-10T12:09:59.5Z"), rules).observed_at
    leap = accepted(report(observed_at="2025-05-10T12:09:60Z"), rules).observed_at
    after = accepted(report(observed_at="2025-05-10T12:10:00Z"), rules).observed_at
    assert before < leap < after


# --- what the parser hides ------------------------------------------------------------------------


def test_a_key_given_twice_is_rejected(rules: Rules) -> None:
    raw = encode(report(source="media.dawn", source_party="NEUTRAL", accused_party=None))
    forged = raw[:-1] + b',"source":"un.unmogip","source_party":"NEUTRAL"}'
    assert reasons(forged, rules) == [("duplicate_key", "$")]


def test_a_key_given_twice_in_a_nested_object_or_by_escape(rules: Rules) -> None:
    raw = encode(report())
    nested = raw.replace(b'"killed":0', b'"killed":0,"killed":5')
    escaped = raw[:-1] + b',"sour\\u0063e":"un.unmogip"}'
    deep = raw.replace(b'"evidence"', b'"extensions":{"a":{"b":1,"b":2}},"evidence"')
    for forged in (nested, escaped, deep):
        assert reasons(forged, rules) == [("duplicate_key", "$")]


def test_a_value_equal_to_a_key_name_is_no_duplicate(rules: Rules) -> None:
    assert accepted(report(description="source", location__place="killed"), rules)


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\x9f"])
def test_control_characters_are_rejected(char: str, rules: Rules) -> None:
    assert reasons(report(description=f"fire{char}at dawn"), rules) == [("control_character", "$.description")]
    assert reasons(report(extensions={"note": [f"a{char}"]}), rules) == [
        ("control_character", "$.extensions.note[0]")
    ]
    assert reasons(report(extensions={f"k{char}": 1}), rules) == [("control_character", f"$.extensions.k{char}")]


def test_tab_newline_and_other_text_are_kept(rules: Rules) -> None:
    text = "Line one\n\tLine two\r\n« quoted » – ۱۲ – ° – \u200f"
    assert accepted(report(description=text), rules).description == text


def test_an_escaped_nul_is_found(rules: Rules) -> None:
    raw = orjson.dumps(report(description="a\x00b"))
    assert b"\\u0000" in raw
    assert reasons(raw, rules) == [("control_character", "$.description")]
