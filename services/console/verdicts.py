"""`ceasefire post --wait`: what became of each record just sent, read back from what ingest wrote.

A record is named by where it landed on the ingest topic (partition, offset), and every ruling ingest
writes names that origin:
- the accepted topic (`ceasefire.reports.accepted.v1`): header `ceasefire.origin`. A plain first
  acceptance's receipt says nothing more than this (dedup stores none for it: services/ingest/dedup.py
  `is_plain`), so the accepted record is the evidence, as a receipt's `accepted` is for report-status;
- the duplicates topic: `Duplicate.origin` (an exact repeat leaves its report's receipt where it was);
- the receipts topic: `Receipt.origin`, the record that made the standing, and `rejections[].origin`;
- the dead-letter topic: the `__connect.errors.partition`/`offset` headers. A record that names no
  report has no receipt: its dead letter is its only trace.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import orjson
from rich.markup import escape

from schemas.ingest import Duplicate, Origin
from schemas.receipt import Receipt
from schemas.topics import Role
from services.console.deadletters import RULE_WORDS, in_words, named, read_dead_letter
from services.console.follow import TopicReader
from services.console.post import send_lines
from services.console.views import plural
from services.ingest.batches import ORIGIN_HEADER
from services.runtime.settings import Settings

Where = tuple[int, int]  # partition, offset on the ingest topic
EVIDENCE = (Role.ACCEPTED, Role.DUPLICATES, Role.RECEIPTS, Role.DEAD_LETTERS)
NOT_RULED = 2  # exit code: the deadline passed with records not ruled on yet
STYLE = {"accepted": "green", "duplicate": "yellow", "dead-lettered": "bold red"}  # the outcomes, in summary order


@dataclass(frozen=True)
class Sent:
    line: int  # its line in the file
    where: Where
    names: tuple[str, str] | None  # (source, report_id), when it names a report


@dataclass(frozen=True)
class Ruling:
    outcome: Literal["accepted", "duplicate", "dead-lettered"]
    text: str  # plain words
    problems: tuple[str, ...] = ()  # "path: message", for a dead letter


class Verdicts:
    """The records sent, and the first ruling read for each."""

    def __init__(self, sent: Iterable[Sent], reports_topic: str) -> None:
        self.sent = {s.where: s for s in sent}
        self.reports_topic = reports_topic
        self.rulings: dict[Where, Ruling] = {}

    @property
    def pending(self) -> list[Sent]:
        return [s for where, s in sorted(self.sent.items()) if where not in self.rulings]

    def note(self, role: Role, headers: Sequence[tuple[str, bytes]], value: bytes | None) -> None:
        """One record of an evidence topic (EVIDENCE)."""
        if value is None:
            return
        if role is Role.ACCEPTED:
            origin = dict(headers).get(ORIGIN_HEADER, b"").decode()
            partition, _, offset = origin.partition(":")
            if offset:
                self._rule((int(partition), int(offset)), _accepted(orjson.loads(value)))
        elif role is Role.DUPLICATES:
            duplicate = Duplicate.model_validate_json(value)
            self._rule(_where(duplicate.origin), _duplicate(duplicate.source, duplicate.duplicate_of, duplicate.rule))
        elif role is Role.RECEIPTS:
            self._receipt(Receipt.model_validate_json(value))
        elif role is Role.DEAD_LETTERS:
            letter = read_dead_letter("", 0, headers, None, value)
            if letter.origin is not None and letter.origin[0] == self.reports_topic:
                problems = [(p.get("path", "$"), p.get("message", "")) for p in letter.problems]
                self._rule(letter.origin[1:], _dead(letter.reason, problems))

    def _receipt(self, receipt: Receipt) -> None:
        for rejection in receipt.rejections:
            self._rule(_where(rejection.origin), _dead(rejection.reason, [(p.path, p.message) for p in rejection.problems]))
        if receipt.origin is None:
            return
        if receipt.outcome in ("accepted", "retracted"):
            self._rule(_where(receipt.origin), _accepted({"revision": receipt.revision, "status": receipt.outcome}))
        elif receipt.outcome == "duplicate" and receipt.rule is not None:
            self._rule(_where(receipt.origin), _duplicate(receipt.source, receipt.duplicate_of or "?", receipt.rule))

    def _rule(self, where: Where, ruling: Ruling) -> None:
        if where in self.sent and where not in self.rulings:
            self.rulings[where] = ruling

    def lines(self) -> list[str]:
        """One line per record sent, in file order (rich markup), a dead letter's problems under it."""
        out = []
        for sent in sorted(self.sent.values(), key=lambda s: s.line):
            who = "(names no report)" if sent.names is None else f"{sent.names[0]}/{sent.names[1]}"
            ruling = self.rulings.get(sent.where)
            text = "not ruled on yet" if ruling is None else ruling.text
            style = "dim" if ruling is None else STYLE[ruling.outcome]
            out.append(f"line {sent.line}  {escape(who)}  [{style}]{escape(text)}[/]")
            out.extend(f"    {escape(problem)}" for problem in (ruling.problems if ruling else ()))
        return out

    def summary(self, timeout: float) -> str:
        counts = {o: sum(1 for r in self.rulings.values() if r.outcome == o) for o in STYLE}
        line = f"{plural(len(self.sent), 'record')}: " + ", ".join(f"{n:,} {o}" for o, n in counts.items())
        pending = len(self.pending)
        return line + (f"; {pending:,} not ruled on within {timeout:g} s" if pending else "")

    def exit_code(self) -> int:
        """0: every record accepted or a duplicate; 1: any dead-lettered; NOT_RULED: some not ruled on."""
        if self.pending:
            return NOT_RULED
        return 1 if any(r.outcome == "dead-lettered" for r in self.rulings.values()) else 0


def _where(origin: Origin) -> Where:
    return origin.partition, origin.offset


def _duplicate(source: str, of: str, rule: str) -> Ruling:
    return Ruling("duplicate", f"duplicate of {source}/{of} ({rule}: {RULE_WORDS[rule]})")


def _dead(reason: str, problems: Iterable[tuple[str, str]]) -> Ruling:
    return Ruling("dead-lettered", f"dead-lettered: {in_words(reason)}", tuple(f"{p}: {m}" for p, m in problems))


def _accepted(report: dict[str, object]) -> Ruling:
    revision = report.get("revision") or 1
    if report.get("status") == "retracted":
        return Ruling("accepted", f"accepted: retracted (revision {revision})")
    return Ruling("accepted", f"accepted (revision {revision})")


async def post_and_wait(
    settings: Settings, lines: Sequence[tuple[int, bytes]], key: tuple[str, str] | None, timeout: float
) -> Verdicts:
    """Send the lines (numbered as in the file), then read what became of each until all are ruled on
    or `timeout` seconds pass. The evidence topics are read from their ends as they were before the
    send, so the wait costs what the records sent cost, not the topics' history."""
    roles = {settings.topic(role): role for role in EVIDENCE}
    async with TopicReader(settings, list(roles)) as reader:
        await reader.from_end()
        landed = await send_lines(settings, [line for _, line in lines], key=key)
        verdicts = Verdicts(
            (Sent(number, _where(origin), named(line)) for (number, line), origin in zip(lines, landed, strict=True)),
            settings.topic(Role.REPORTS),
        )
        if not verdicts.pending:
            return verdicts
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), contextlib.aclosing(reader.records(follow=True)) as records:
                async for record in records:
                    verdicts.note(roles[record.topic], record.headers or (), record.value)
                    if not verdicts.pending:
                        break
    return verdicts
