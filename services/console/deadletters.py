"""`ceasefire dead-letters`: every rejected record, why in plain words, and what it held.

Reads ingest's dead letters (`ceasefire.reports.v1.dlq`: the original key and bytes, headers say why:
services/ingest/deadletter.py) and the stages' (`ceasefire.stages.v1.dlq`: services/runtime/failure.py).
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from rich.markup import escape

from schemas.topics import Role
from services.console.follow import TopicReader
from services.console.terminal import terminal_console
from services.console.views import plural
from services.ingest.validate import Reason, named_report
from services.runtime.failure import FAULT, UNDECODABLE
from services.runtime.settings import Settings

ERRORS = "__connect.errors."

# One sentence per reason a record is dead-lettered (tests/unit/test_console_words.py: every one has one).
REASON_WORDS: dict[str, str] = {
    Reason.EMPTY: "the record has no value",
    Reason.TOO_LARGE: "the record is larger than the size limit",
    Reason.NOT_UTF8: "the record is not UTF-8 text",
    Reason.NOT_JSON: "the record is not JSON",
    Reason.SCHEMA: "the record does not follow the report format",
    Reason.SELF_ACCUSATION: "the report accuses its own party",
    Reason.COORDINATES_OUT_OF_RANGE: "a latitude or longitude is out of range",
    Reason.UNKNOWN_CEASEFIRE: "the report names a ceasefire that is not in the registry",
    Reason.PARTY_NOT_IN_CEASEFIRE: "a party it names is not a party to the ceasefire",
    Reason.UNKNOWN_SECTOR: "the sector is not one of the ceasefire's sectors",
    Reason.OUTSIDE_CEASEFIRE_AREA: "the location lies outside the ceasefire's area",
    Reason.FUTURE_OBSERVED_AT: "observed_at lies in the future",
    Reason.REPORTED_BEFORE_OBSERVED: "reported_at is before observed_at",
    Reason.DUPLICATE_KEY: "a JSON object holds the same key twice",
    Reason.CONTROL_CHARACTER: "a text field holds a control character",
    Reason.PRECISION_OUT_OF_RANGE: "precision_km is out of range",
    Reason.CASUALTIES_OUT_OF_RANGE: "a casualty count is out of range",
    Reason.BEFORE_CEASEFIRE: "it was observed too long before the ceasefire took effect",
    Reason.FUTURE_REPORTED_AT: "reported_at lies in the future",
    Reason.TOO_OLD: "it is older than deduplication remembers, so a repeat could not be told from a new report",
    Reason.UNJUDGEABLE: "deduplication failed on it (a defect: the report is kept for a replay)",
    Reason.UNKNOWN_SOURCE: "the source is not in the source registry",
    Reason.PARTY_MISMATCH: "the source is not registered for the party it reports as",
    Reason.SIGNATURE: "its signature is missing or does not match",
    Reason.STALE_REVISION: "it is not newer than the accepted revision, and says something else",
    Reason.RETRACTED: "its source had retracted the report: a retraction is final",
    UNDECODABLE: "a stage could not decode the record",
    FAULT: "a stage failed on the record",
}
# Dedup's two rules for a repeat (services/ingest/dedup.py).
RULE_WORDS = {
    "exact": "the same report sent again",
    "resubmission": "the same content under a new report_id",
}


def in_words(reason: str) -> str:
    return REASON_WORDS.get(reason, f"reason {reason!r}")


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered record, as a person and a script read it."""

    topic: str
    at: datetime  # when it was dead-lettered (the dead letter's timestamp)
    reason: str  # the primary reason
    problems: list[dict[str, str]]  # reason, path, message
    origin: tuple[str, int, int] | None  # topic, partition, offset it was read at
    key: bytes | None = None
    value: bytes | None = None
    stage: str | None = None  # a stage's dead letter: which stage
    named: tuple[str, str] | None = None  # (source, report_id) when the bytes name a report

    @property
    def reasons(self) -> set[str]:
        return {self.reason, *(p.get("reason", "") for p in self.problems)}


def read_dead_letter(
    topic: str, timestamp_ms: int, headers: Iterable[tuple[str, bytes]], key: bytes | None, value: bytes | None
) -> DeadLetter:
    """A dead letter from its record: the headers say why, the value is the original."""
    said = {name: raw.decode(errors="replace") for name, raw in headers}
    reason = said.get("ceasefire.reason", "")
    stage = said.get(ERRORS + "stage")
    try:
        problems = [p for p in orjson.loads(said["ceasefire.errors"]) if isinstance(p, dict)]
    except (KeyError, orjson.JSONDecodeError):
        kind = said.get(ERRORS + "exception.class.name", "")
        message = said.get(ERRORS + "exception.message", "")
        problems = [{"reason": reason, "path": "$", "message": f"{kind}: {message}" if stage else message}]
    origin = None
    if (ERRORS + "partition") in said and (ERRORS + "offset") in said:
        try:
            origin = (said.get(ERRORS + "topic", ""), int(said[ERRORS + "partition"]), int(said[ERRORS + "offset"]))
        except ValueError:
            origin = None
    return DeadLetter(
        topic=topic, at=datetime.fromtimestamp(timestamp_ms / 1000, UTC), reason=reason, problems=problems,
        origin=origin, key=key, value=value, stage=stage, named=None if stage else named(value),
    )


def named(value: bytes | None) -> tuple[str, str] | None:
    """`(source, report_id)` when the bytes are JSON that names a report, however broken otherwise."""
    found = named_report(value)
    return None if found is None else (found.source, found.report_id)


def preview(value: bytes | None, width: int = 72) -> str:
    """The original bytes, short and on one line: control characters and bad bytes shown, not obeyed."""
    if not value:
        return "(no value)"
    text = value[: width * 4].decode("utf-8", errors="backslashreplace")
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= width and len(value) <= width * 4 else text[: width - 1] + "…"


def dead_letter_lines(letter: DeadLetter) -> list[str]:
    """For a person (rich markup): when and why, what it named, each problem, the bytes."""
    what = "names no report" if letter.named is None else f"{letter.named[0]}/{letter.named[1]}"
    if letter.stage:
        what = f"stage {letter.stage}"
    where = ""
    if letter.origin is not None:
        where = " [dim]({} partition {} offset {})[/]".format(*letter.origin)
    when = letter.at.strftime("%Y-%m-%d %H:%M:%S")
    head = f"{when}Z [bold]{escape(letter.reason)}[/]: {escape(in_words(letter.reason))} · {escape(what)}{where}"
    lines = [head]
    lines.extend(f"  {escape(p.get('path', '$'))}: {escape(p.get('message', ''))}" for p in letter.problems)
    lines.append(f"  [dim]{escape(preview(letter.value))}[/]")
    return lines


def dead_letter_json(letter: DeadLetter) -> dict[str, Any]:
    """For a script: everything, the original key and value in base64."""
    origin = None if letter.origin is None else dict(zip(("topic", "partition", "offset"), letter.origin, strict=True))
    return {
        "topic": letter.topic,
        "at": letter.at.isoformat(),
        "reason": letter.reason,
        "reason_text": in_words(letter.reason),
        "problems": letter.problems,
        "source": None if letter.named is None else letter.named[0],
        "report_id": None if letter.named is None else letter.named[1],
        "stage": letter.stage,
        "origin": origin,
        "key_base64": _b64(letter.key),
        "value_base64": _b64(letter.value),
    }


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode()


def wanted(letter: DeadLetter, since: datetime | None, reason: str | None) -> bool:
    return (since is None or letter.at >= since) and (reason is None or reason in letter.reasons)


async def show_dead_letters(
    settings: Settings, since: datetime | None, reason: str | None, as_json: bool, follow: bool
) -> None:
    """Both dead-letter topics; read to their ends, in the order they were dead-lettered, with a count;
    with `follow`, each as it comes."""
    console = terminal_console()
    held: list[DeadLetter] = []
    topics = [settings.topic(Role.DEAD_LETTERS), settings.topic(Role.STAGE_DEAD_LETTERS)]

    def show(letter: DeadLetter) -> None:
        if as_json:
            sys.stdout.write(orjson.dumps(dead_letter_json(letter)).decode() + "\n")
            sys.stdout.flush()
        else:
            for line in dead_letter_lines(letter):
                console.print(line)

    async with TopicReader(settings, topics) as reader:
        async for record in reader.records(follow):
            letter = read_dead_letter(record.topic, record.timestamp, record.headers or (), record.key, record.value)
            if not wanted(letter, since, reason):
                continue
            if follow:
                show(letter)
            else:
                held.append(letter)
    for letter in sorted(held, key=lambda d: d.at):
        show(letter)
    if not as_json:
        console.print(plural(len(held), "dead letter"))
