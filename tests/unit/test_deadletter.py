"""Dead-letter headers: Kafka Connect's names, so existing DLQ tooling reads them; our reason and errors."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from schemas.ceasefire import Registry
from services.ingest.deadletter import dead_letter_headers
from services.ingest.validate import Problem, Reason, Rules, validate
from tests.support.reports import encode, report

NOW = datetime(2025, 5, 10, 13, 0, tzinfo=UTC)
CONNECT_NAMES = [
    "__connect.errors.topic",
    "__connect.errors.partition",
    "__connect.errors.offset",
    "__connect.errors.exception.class.name",
    "__connect.errors.exception.message",
]


def problems_for(raw: bytes, registry: Registry) -> list[Problem]:
    verdict = validate(raw, Rules(registry), NOW)
    assert isinstance(verdict, list)
    return verdict


def test_header_names_in_order(registry: Registry) -> None:
    headers = dead_letter_headers("ceasefire.reports.v1", 0, 0, problems_for(b"{not json", registry))
    assert [name for name, _ in headers] == [*CONNECT_NAMES, "ceasefire.reason", "ceasefire.errors"]
    assert all(isinstance(value, bytes) for _, value in headers)


def test_header_values_say_where_the_record_came_from_and_why(registry: Registry) -> None:
    problems = problems_for(encode(report(location={"sector": "Gotham"})), registry)
    headers = dict(dead_letter_headers("ceasefire.reports.v1", 3, 12345, problems))
    assert headers["__connect.errors.topic"] == b"ceasefire.reports.v1"
    assert headers["__connect.errors.partition"] == b"3"
    assert headers["__connect.errors.offset"] == b"12345"
    assert headers["__connect.errors.exception.class.name"] == b"ceasefire.unknown_sector"
    assert headers["ceasefire.reason"] == b"unknown_sector"
    assert headers["__connect.errors.exception.message"].startswith(b"$.location.sector: ")
    assert orjson.loads(headers["ceasefire.errors"]) == [
        {"reason": "unknown_sector", "path": "$.location.sector", "message": problems[0].message}
    ]


def test_reason_headers_carry_the_primary_reason_and_errors_list_every_problem(registry: Registry) -> None:
    doc = report(report_id="bad id", location={"lat": 91.0, "lon": 74.0}, casualties={"killed": "3"})
    problems = problems_for(encode(doc), registry)
    headers = dict(dead_letter_headers("t", 0, 7, problems))
    assert headers["ceasefire.reason"] == b"coordinates_out_of_range"
    assert headers["__connect.errors.exception.class.name"] == b"ceasefire.coordinates_out_of_range"
    errors = orjson.loads(headers["ceasefire.errors"])
    assert errors == [p.as_dict() for p in problems]
    assert {(e["reason"], e["path"]) for e in errors} == {
        ("schema", "$.report_id"),
        ("coordinates_out_of_range", "$.location.lat"),
        ("schema", "$.casualties.killed"),
    }
    message = headers["__connect.errors.exception.message"].decode()
    assert all(f"{p.path}: " in message for p in problems)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(b"", "empty"), (b"\xff", "not_utf8"), (b"[1]", "schema"), (b"{", "not_json")],
)
def test_whole_record_problems(raw: bytes, reason: str, registry: Registry) -> None:
    headers = dict(dead_letter_headers("t", 1, 2, problems_for(raw, registry)))
    assert headers["ceasefire.reason"] == reason.encode()
    assert [e["path"] for e in orjson.loads(headers["ceasefire.errors"])] == ["$"]


def test_message_summarises_five_problems_and_counts_the_rest() -> None:
    problems = [Problem(Reason.SCHEMA, f"$.field_{i}", "wrong") for i in range(8)]
    headers = dict(dead_letter_headers("t", 0, 0, problems))
    message = headers["__connect.errors.exception.message"].decode()
    assert message.split("; ") == [*(f"$.field_{i}: wrong" for i in range(5)), "and 3 more"]
    assert len(orjson.loads(headers["ceasefire.errors"])) == 8  # the full list is never cut


def test_non_ascii_text_is_utf8_in_the_headers() -> None:
    problems = [Problem(Reason.UNKNOWN_SECTOR, "$.location.sector", "no sector 'Srīnagar'")]
    headers = dict(dead_letter_headers("t", 0, 0, problems))
    message = headers["__connect.errors.exception.message"].decode("utf-8")
    assert message == "$.location.sector: no sector 'Srīnagar'"
    assert orjson.loads(headers["ceasefire.errors"])[0]["message"] == "no sector 'Srīnagar'"
