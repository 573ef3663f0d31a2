"""The console in plain words: every dead-letter reason has a sentence, counts agree with their nouns,
`post --wait` names what became of each record, and `--explain` prints its header once, as text."""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime

import orjson
from rich.console import Console

from schemas.ingest import Duplicate, Origin
from schemas.receipt import Problem, Receipt, Rejection
from schemas.topics import Role
from services.console.deadletters import REASON_WORDS, RULE_WORDS, dead_letter_json, preview, read_dead_letter
from services.console.verdicts import NOT_RULED, Sent, Verdicts
from services.console.views import explain, plural
from services.ingest.batches import ORIGIN_HEADER
from services.ingest.deadletter import dead_letter_headers
from services.ingest.validate import Problem as Found
from services.ingest.validate import Reason
from services.runtime.failure import FAULT, UNDECODABLE, stage_dead_letter_headers
from tests.support.incidents import incident

NOW = datetime(2025, 5, 11, 9, 0, tzinfo=UTC)
REPORTS = "ceasefire.reports.v1"


def test_every_reason_has_one_plain_sentence() -> None:
    for reason in [*Reason, UNDECODABLE, FAULT]:
        words = REASON_WORDS.get(reason)
        assert words and "_" not in words.replace("observed_at", "").replace("reported_at", "").replace(
            "precision_km", "").replace("report_id", ""), reason
    assert set(RULE_WORDS) == {"exact", "resubmission"}


def test_counts_agree_with_their_nouns() -> None:
    assert plural(1, "report") == "1 report"
    assert plural(2, "report") == "2 reports"
    assert plural(0, "dead letter") == "0 dead letters"
    assert plural(1200, "point") == "1,200 points"


def test_a_dead_letter_reads_as_when_why_what_and_the_bytes() -> None:
    raw = b'{"source":"in.army","report_id":"r-1","casualties":{"killed":"three"}}'
    headers = dead_letter_headers(REPORTS, 2, 41, [Found(Reason.SCHEMA, "$.casualties.killed", "not an integer")])
    letter = read_dead_letter(REPORTS + ".dlq", int(NOW.timestamp() * 1000), headers, b"office", raw)
    assert (letter.reason, letter.named, letter.origin, letter.at) == ("schema", ("in.army", "r-1"), (REPORTS, 2, 41), NOW)
    shown = dead_letter_json(letter)
    assert base64.b64decode(shown["value_base64"]) == raw and base64.b64decode(shown["key_base64"]) == b"office"
    assert shown["problems"] == [{"reason": "schema", "path": "$.casualties.killed", "message": "not an integer"}]
    assert shown["reason_text"] == REASON_WORDS["schema"]


def test_a_stage_dead_letter_names_its_stage_and_error() -> None:
    headers = stage_dead_letter_headers("correlate", "t.in", 0, 7, FAULT, ValueError("boom"))
    letter = read_dead_letter("t.stages", 0, headers, None, b'{"reports":[]}')
    assert (letter.stage, letter.reason, letter.named) == ("correlate", FAULT, None)
    assert "boom" in letter.problems[0]["message"]


def test_the_preview_is_short_one_line_and_shows_bad_bytes() -> None:
    assert preview(b"\xff\xfe{\n") == "\\xff\\xfe{\\n"
    assert preview(b"x" * 500).endswith("…") and len(preview(b"x" * 500)) == 72
    assert preview(b"") == "(no value)"


def sent(*wheres: tuple[int, int]) -> Verdicts:
    return Verdicts([Sent(n, where, None if n == 3 else ("in.army", f"r-{n}")) for n, where in enumerate(wheres, 1)], REPORTS)


def test_post_wait_names_each_verdict_by_where_the_record_landed() -> None:
    verdicts = sent((0, 10), (1, 4), (0, 11))
    verdicts.note(Role.ACCEPTED, [(ORIGIN_HEADER, b"0:10")], orjson.dumps({"revision": 1, "status": "filed"}))
    duplicate = Duplicate(source="in.army", report_id="r-2", rule="exact", duplicate_of="r-1", origin=Origin(partition=1, offset=4))
    verdicts.note(Role.DUPLICATES, [], duplicate.model_dump_json().encode())
    assert verdicts.exit_code() == NOT_RULED and "1 not ruled on within 5 s" in verdicts.summary(5)
    headers = dead_letter_headers(REPORTS, 0, 11, [Found(Reason.NOT_JSON, "$", "not JSON: unexpected character")])
    verdicts.note(Role.DEAD_LETTERS, headers, b"garbage")
    lines = verdicts.lines()
    assert "accepted (revision 1)" in lines[0]
    assert "duplicate of in.army/r-1 (exact: the same report sent again)" in lines[1]
    assert "(names no report)" in lines[2] and f"dead-lettered: {REASON_WORDS['not_json']}" in lines[2]
    assert "$: not JSON: unexpected character" in lines[3]
    assert verdicts.summary(5) == "3 records: 1 accepted, 1 duplicate, 1 dead-lettered"
    assert verdicts.exit_code() == 1


def test_post_wait_reads_receipts_and_ignores_other_records() -> None:
    verdicts = sent((0, 10), (1, 4))
    rejection = Rejection(reason="stale_revision", problems=[Problem(reason="stale_revision", path="$.revision", message="old")],
                          origin=Origin(partition=1, offset=4), at=NOW)
    standing = Receipt(source="in.army", report_id="r-1", outcome="accepted", revision=2, origin=Origin(partition=0, offset=10),
                       rejections=[rejection], updated_at=NOW)
    verdicts.note(Role.RECEIPTS, [], standing.model_dump_json().encode())
    other = dead_letter_headers("another.topic", 0, 10, [Found(Reason.NOT_JSON, "$", "x")])
    verdicts.note(Role.DEAD_LETTERS, other, b"x")  # the same offset on another topic is another record
    assert [verdicts.rulings[w].text for w in ((0, 10), (1, 4))] == [
        "accepted (revision 2)", f"dead-lettered: {REASON_WORDS['stale_revision']}",
    ]
    assert verdicts.exit_code() == 1
    accepted_only = sent((0, 10))
    accepted_only.note(Role.RECEIPTS, [], standing.model_copy(update={"rejections": []}).model_dump_json().encode())
    assert accepted_only.exit_code() == 0


def test_explain_prints_its_header_once_as_text_not_markup() -> None:
    held = incident()
    console = Console(file=io.StringIO(), width=300, record=True, color_system=None)
    console.print(explain(held))
    header = console.export_text().splitlines()[0]
    assert "[/" not in header and "[bold" not in header
    assert header.count(held.incident_id) == 1 and header.count(f"v{held.version}") == 1
