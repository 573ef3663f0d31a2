"""The examples in docs/reports.md are executed, so the contract page cannot drift from the code.

A fenced block is an example when the line before it is a marker:
- `<!-- example: report -->` + ```json: validates as accepted against the shipped registry;
- `<!-- example: accepted report_id=ID -->` + ```json: exactly what ingest publishes for the report
  example with that `report_id`, at the `ingested_at` shown;
- `<!-- example: dead-letter reason=R path=P [encoding=E] -->` + ```json or ```text: dead-lettered with
  primary reason R and a problem at path P (the block's text encoded with E, UTF-8 by default);
- `<!-- example: dead-letter-headers -->` + ```text: the headers written for the dead letter before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from schemas.ceasefire import Registry
from schemas.report import AcceptedReport
from schemas.source import load_sources
from services.ingest.deadletter import dead_letter_headers
from services.ingest.validate import Reason, Rules, primary_reason, validate

DOC = Path(__file__).resolve().parents[2] / "docs" / "reports.md"
NOW = datetime(2025, 5, 11, tzinfo=UTC)  # the processing time the page states
BLOCK = re.compile(
    r"^(?:<!-- example: (?P<marker>[^>]*?) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)


@dataclass(frozen=True)
class Example:
    kind: str
    attributes: dict[str, str]
    lang: str
    body: str
    line: int

    @property
    def raw(self) -> bytes:
        text = self.body.removesuffix("\n")
        return text.encode(self.attributes.get("encoding", "utf-8"))

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        """Signature headers an example states (`key-id=… signature=…`)."""
        names = {"key-id": "ceasefire-key-id", "signature": "ceasefire-signature"}
        return [(header, self.attributes[name].encode()) for name, header in names.items() if name in self.attributes]

    def __str__(self) -> str:
        return f"docs/reports.md:{self.line} ({self.kind})"


def blocks() -> list[Example]:
    text = DOC.read_text(encoding="utf-8")
    found = []
    for match in BLOCK.finditer(text):
        kind, *pairs = (match["marker"] or "").split()
        found.append(
            Example(
                kind=kind if match["marker"] else "",
                attributes=dict(pair.split("=", 1) for pair in pairs),
                lang=match["lang"],
                body=match["body"],
                line=text.count("\n", 0, match.start()) + 1,
            )
        )
    return found


def examples(kind: str) -> list[Example]:
    return [block for block in blocks() if block.kind == kind]


def preceding(block: Example, kind: str) -> Example:
    earlier = [b for b in blocks() if b.kind == kind and b.line < block.line]
    assert earlier, f"{block}: no {kind} example before it"
    return earlier[-1]


@pytest.fixture(scope="module")
def rules(registry: Registry) -> Rules:
    """The shipped ceasefire and source registries, enforced (the default)."""
    return Rules(registry, sources=load_sources(DOC.parents[1] / "deploy" / "sources.yaml", registry))


def test_every_json_block_is_an_executed_example() -> None:
    unmarked = [b.line for b in blocks() if b.lang == "json" and not b.kind]
    assert unmarked == [], f"```json blocks in docs/reports.md without an example marker at lines {unmarked}"
    kinds = {"report", "accepted", "dead-letter", "dead-letter-headers"}
    assert {b.kind for b in blocks() if b.kind} <= kinds


@pytest.mark.parametrize("example", examples("report"), ids=str)
def test_report_example_is_accepted(example: Example, rules: Rules) -> None:
    verdict = validate(example.raw, rules, NOW)
    assert isinstance(verdict, AcceptedReport), f"{example}: {verdict}"


@pytest.mark.parametrize("example", examples("accepted"), ids=str)
def test_accepted_example_is_what_ingest_publishes(example: Example, rules: Rules) -> None:
    shown = orjson.loads(example.raw)
    ingested_at = datetime.fromisoformat(shown["ingested_at"])
    wanted = example.attributes["report_id"]
    [source] = [b for b in examples("report") if orjson.loads(b.raw)["report_id"] == wanted]
    verdict = validate(source.raw, rules, ingested_at)
    assert isinstance(verdict, AcceptedReport), verdict
    verdict = verdict.model_copy(update={"ordered_at": verdict.observed_at})  # first of its partition
    assert orjson.loads(verdict.model_dump_json()) == shown


@pytest.mark.parametrize("example", examples("dead-letter"), ids=str)
def test_dead_letter_example_has_the_stated_reason_and_path(example: Example, rules: Rules) -> None:
    verdict = validate(example.raw, rules, NOW, example.headers)
    assert isinstance(verdict, list), f"{example} was accepted"
    assert primary_reason(verdict).value == example.attributes["reason"]
    assert example.attributes["path"] in [p.path for p in verdict]


@pytest.mark.parametrize("example", examples("dead-letter-headers"), ids=str)
def test_headers_example_is_what_ingest_writes(example: Example, rules: Rules) -> None:
    shown = [tuple(line.split(": ", 1)) for line in example.body.splitlines()]
    values = dict(shown)
    verdict = validate(preceding(example, "dead-letter").raw, rules, NOW)
    assert isinstance(verdict, list)
    written = dead_letter_headers(
        values["__connect.errors.topic"],
        int(values["__connect.errors.partition"]),
        int(values["__connect.errors.offset"]),
        verdict,
    )
    assert [(name, value.decode()) for name, value in written] == shown


def test_every_reason_has_an_example() -> None:
    shown = {b.attributes["reason"] for b in examples("dead-letter")}
    # too_large needs 64 KiB: the page describes it, test_validate.py proves it. too_old and unjudgeable
    # (and stale_revision) are ruled by dedup, not by validation: test_dedup.py and the ingest tests show them.
    by_dedup = (Reason.TOO_OLD, Reason.UNJUDGEABLE, Reason.STALE_REVISION, Reason.RETRACTED)
    assert shown == {reason.value for reason in Reason} - {r.value for r in (Reason.TOO_LARGE, *by_dedup)}


def test_every_reason_is_in_the_reasons_table() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [reason.value for reason in Reason if f"| `{reason.value}` |" not in text]
    assert missing == []
