"""The deduplicate agent's body (`ingest-deduplicate`, wired in services/ingest/agent.py).

Reads the by-source topic. State: table `dedup` (changelogged), per partition, `(source, report_id)`
with the revisions accepted, content fingerprints, the origins ruled on, and each report's receipt
(services/ingest/persist.py). Writes each accepted report to `ceasefire.reports.accepted.v1` (key
`ceasefire_id`, for subscribers) and, batched, to the internal `ceasefire.internal.reports.accepted.v1`
(`AcceptedBatch` records, partition = the accepted topic's partition of the ceasefire: correlate's
input); each repeat to `ceasefire.reports.duplicates.v1` (key `source`); every ruling's receipt to
`ceasefire.reports.receipts.v1`.

Order of writes, so that a crash re-emits but never drops: outputs are sent and acknowledged, then
the table is updated, then offsets are committed (Faust acks the events after the body returns).
"""

from __future__ import annotations

import base64
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import faust

from schemas.ingest import PARTITION_MARKS, Duplicate, Mark, Rejected, ReportBatch, SourcedReport
from schemas.receipt import Receipt
from schemas.report import Report
from schemas.topics import Role
from services.ingest import receipts
from services.ingest.batches import MARKS_KEY, ORIGIN_HEADER, chunk_batches
from services.ingest.deadletter import dead_letter_headers
from services.ingest.dedup import Decision, DedupState
from services.ingest.validate import Problem, Reason, Rules
from services.runtime.codec import encode
from services.runtime.context import Context
from services.runtime.failure import describe
from services.runtime.stage import AheadOfTime, Outbox, decode_batch, not_ahead
from services.runtime.state import PartitionEntries, changelog_sent, fenced_table, key_partition
from services.watermark import later, low_watermark

SWEEP_EVERY_SECONDS = 24 * 3600.0  # event time between expiry sweeps of one partition
log = logging.getLogger(__name__)


@dataclass
class Books:
    """What one dedup batch ruled, to count once its outputs are acknowledged."""

    rules: list[str] = field(default_factory=list)  # each duplicate's rule
    dead: list[str] = field(default_factory=list)  # each dead letter's reason
    redelivered: int = 0
    revisions: list[str] = field(default_factory=list)  # each accepted revision's kind: revised, retracted
    by_ceasefire: dict[int, list[bytes]] = field(default_factory=lambda: defaultdict(list))  # correlate's input
    marks: dict[int, dict[str, dict[str, Mark]]] = field(default_factory=lambda: defaultdict(dict))  # by target


class DedupStage:
    """Move a batch of the by-source topic to the accepted, duplicates, receipts and dead-letter topics
    and the dedup table."""

    def __init__(self, app: faust.App, ctx: Context, rules: Rules) -> None:
        s = ctx.settings
        self.app, self.ctx, self.rules = app, ctx, rules
        self.retention = s.dedup_retention_hours * 3600
        self.partitions = s.partitions
        self.topics = {role: s.topic(role) for role in Role}
        self.dedup = fenced_table(app, "dedup", partitions=s.partitions, key_type=str, value_type=str)
        self.swept: dict[int, float] = {}
        # the marks of every ingest partition as each dedup partition last heard them, and the low
        # watermark it last sent per ceasefire (docs/event-time.md)
        self.upstream: dict[int, dict[str, dict[str, Mark]]] = {}
        self.lows_sent: dict[tuple[int, str], Mark] = {}

    async def deduplicate_batch(self, events: list[faust.EventT[Any]]) -> None:
        """All the ReportBatch records taken at once: one round of acknowledgements for all of them."""
        states: dict[int, DedupState] = {}
        outbox = Outbox(self.app, self.ctx, "deduplicate")
        books = Books()
        total = 0
        heard: set[int] = set()  # dedup partitions whose records brought marks
        for message, batch in await decode_batch(events, Role.BY_SOURCE, outbox):
            partition = message.partition
            state = states.get(partition)
            if state is None:
                entries = PartitionEntries(self.dedup, partition)
                state = states[partition] = DedupState(entries, self.retention, scope=f"{partition}/")
            total += len(batch.reports)
            await self._decide(batch, state, outbox, books)
            for rejection in batch.rejected:
                await self._note_rejection(state, rejection, outbox)
            if batch.progress:
                self._upstream(partition).update(batch.progress)
                heard.add(partition)
        self._lows(states, books)
        for target in sorted(books.by_ceasefire.keys() | books.marks.keys()):  # correlate's input, batched
            marks = books.marks.get(target)
            tail = b',"marks":' + PARTITION_MARKS.dump_json(marks) if marks else b""
            for chunk in chunk_batches(books.by_ceasefire.get(target, []), tail):
                await outbox.send(Role.ACCEPTED_BATCHES, None, chunk, target)
        await outbox.flush()
        for partition, state in states.items():
            state.commit()  # only after the acknowledgements: a crash before this line re-emits, never drops
            self._maybe_sweep(partition, state)
            if partition in heard:  # the marks this batch brought, kept for a restart
                heard_marks = PARTITION_MARKS.dump_json(self.upstream[partition]).decode()
                self.dedup.write_entries(partition, {f"{MARKS_KEY}{partition}": heard_marks})
        self._count(total, books)
        await changelog_sent(self.app)

    def forget_partitions(self, revoked: set[int]) -> None:
        """Dedup partitions taken away: what was heard and sent for them is read from the table again if
        they come back (another worker may have moved them on meanwhile: a network partition, a pause)."""
        for partition in revoked:
            self.upstream.pop(partition, None)
        for key in [k for k in self.lows_sent if k[0] in revoked]:
            del self.lows_sent[key]

    def _upstream(self, partition: int) -> dict[str, dict[str, Mark]]:
        """The marks of every ingest partition as this dedup partition last heard them (from its table
        after a restart: its low watermark never starts again from nothing)."""
        marks = self.upstream.get(partition)
        if marks is None:
            stored = PartitionEntries(self.dedup, partition).get(f"{MARKS_KEY}{partition}")
            marks = self.upstream[partition] = PARTITION_MARKS.validate_json(stored) if stored else {}
        return marks

    def _lows(self, states: dict[int, DedupState], books: Books) -> None:
        """Each dedup partition's low watermark per ceasefire, when it moved, for the ceasefire's
        correlate partition (sent after this batch's reports)."""
        for partition in states:
            upstream = self._upstream(partition)
            for ceasefire in self.ctx.registry.ceasefires:
                by_ingest = {p: by[ceasefire.id] for p, by in upstream.items() if ceasefire.id in by}
                sent = self.lows_sent.get((partition, ceasefire.id))
                low = later(low_watermark(by_ingest, self.partitions), sent)
                if low is not None and low != sent:
                    self.lows_sent[partition, ceasefire.id] = low
                    target = key_partition(ceasefire.id, self.partitions)
                    books.marks[target].setdefault(str(partition), {})[ceasefire.id] = low

    async def _decide(self, batch: ReportBatch, state: DedupState, outbox: Outbox, books: Books) -> None:
        """Rule on each report of one partition's batch and send its record (accepted, duplicate or
        dead letter) and its receipt; a re-delivery is booked already and sends nothing."""
        now = datetime.now(UTC)
        for item in batch.reports:
            report, origin = item.report, item.where
            try:  # validation bounds it: one this far ahead did not come from it
                not_ahead(report.observed_at, now, self.rules.max_future, "observed_at")
                decision = state.decide(report, origin)
            except AheadOfTime as ahead:
                await self._reject(state, outbox, item, Problem(Reason.FUTURE_OBSERVED_AT, "$.observed_at", str(ahead)), books)
                continue
            except Exception as exc:  # noqa: BLE001 - a defect on one report must not stop dedup
                log.exception("dedup raised on report %s; dead-lettered as unjudgeable", origin)
                await self._reject(state, outbox, item, Problem(Reason.UNJUDGEABLE, "$", describe(exc)), books)
                continue
            if decision.outcome == "redelivered":
                books.redelivered += 1
            elif decision.outcome == "too_old":
                await self._reject(state, outbox, item, self._too_old(report, state), books)
            elif decision.outcome == "stale":
                await self._reject(state, outbox, item, _stale(report, decision.revises or 1), books)
            elif decision.outcome == "final":
                await self._reject(state, outbox, item, _final(report, decision.revises or 1), books)
            elif decision.rule is None:
                record = encode(report)  # once, for the public topic and correlate's batches
                await outbox.publish(Role.ACCEPTED, report, headers=[(ORIGIN_HEADER, origin.encode())], encoded=record)
                books.by_ceasefire[key_partition(report.ceasefire_id, self.partitions)].append(record)
                filed = state.filed_receipt(*report.identity)  # a plain one has nothing to carry on
                await self._file(state, outbox, receipts.accepted(filed, report, item.origin, now), report, filed is not None)
                if decision.revises is not None:
                    books.revisions.append("retracted" if report.retracted else "revised")
            else:
                await self._duplicate(state, outbox, item, decision, books, now)

    async def _duplicate(
        self, state: DedupState, outbox: Outbox, item: SourcedReport, decision: Decision, books: Books, now: datetime
    ) -> None:
        report = item.report
        books.rules.append(decision.rule or "")
        of = decision.duplicate_of or ""
        duplicate = Duplicate(source=report.source, report_id=report.report_id, rule=decision.rule or "exact", duplicate_of=of, origin=item.origin)
        await outbox.publish(Role.DUPLICATES, duplicate)
        previous = state.receipt(*report.identity, report.ceasefire_id)
        if decision.rule == "exact":
            receipt = receipts.repeated(previous, report, item.origin, now)
        else:
            receipt = receipts.resubmitted(previous, report, of, item.origin, now)
        await self._file(state, outbox, receipt, report)

    async def _reject(self, state: DedupState, outbox: Outbox, item: SourcedReport, problem: Problem, books: Books) -> None:
        """Dead-letter a report dedup cannot accept, and note it on the report's receipt."""
        await self._dead_letter(outbox, item, problem, books)
        report = item.report
        rejection = Rejected(
            source=report.source, report_id=report.report_id, ceasefire_id=report.ceasefire_id,
            revision=report.revision, reason=problem.reason.value, problems=[receipts.problem(problem)],
            origin=item.origin,
        )
        await self._note_rejection(state, rejection, outbox, report)

    async def _note_rejection(self, state: DedupState, rejection: Rejected, outbox: Outbox, report: Report | None = None) -> None:
        """A dead-lettered record (validation's, or dedup's own about `report`), on the receipt of the
        report it names."""
        identity = (rejection.source, rejection.report_id)
        previous = state.receipt(*identity, rejection.ceasefire_id)
        receipt = receipts.rejected(
            previous, identity, rejection.reason, rejection.problems, rejection.origin,
            datetime.now(UTC), rejection.ceasefire_id, rejection.revision,
        )
        if receipt is not previous:  # the same: this very record, read again
            await self._file(state, outbox, receipt, report)

    async def _file(
        self, state: DedupState, outbox: Outbox, receipt: Receipt, report: Report | None, filed: bool | None = None
    ) -> None:
        """Publish a receipt and stage it with the partition's state (stored after the outputs are acknowledged)."""
        encoded = encode(receipt)
        await outbox.publish(Role.RECEIPTS, receipt, encoded=encoded)
        state.file_receipt(receipt, None if report is None else report.observed_at.timestamp(), encoded, filed)

    async def _dead_letter(self, outbox: Outbox, item: SourcedReport, problem: Problem, books: Books) -> None:
        """The original record, key and bytes, on the ingest dead-letter topic, as validation writes it."""
        books.dead.append(problem.reason.value)
        headers = dead_letter_headers(self.topics[Role.REPORTS], item.origin.partition, item.origin.offset, [problem])
        key = None if item.raw_key is None else base64.b64decode(item.raw_key)
        value = item.raw.encode() if item.raw else encode(item.report)  # a record from before raw was kept
        await outbox.send(Role.DEAD_LETTERS, key, value, None, headers)

    def _too_old(self, report: Report, state: DedupState) -> Problem:
        newest = datetime.fromtimestamp(state.watermark, UTC).isoformat()
        return Problem(
            Reason.TOO_OLD,
            "$.observed_at",
            f"observed_at {report.observed_at.isoformat()} is more than the dedup retention"
            f" ({self.retention / 3600:g} h) behind the newest report of its dedup partition ({newest})",
        )

    def _count(self, total: int, books: Books) -> None:
        metrics = self.ctx.metrics
        metrics.reports.labels("accepted", "").inc(total - len(books.rules) - len(books.dead) - books.redelivered)
        metrics.reports.labels("duplicate", "").inc(len(books.rules))
        metrics.redeliveries.labels("deduplicate").inc(books.redelivered)
        for reason in books.dead:
            metrics.reports.labels("dead_lettered", reason).inc()
        for rule in books.rules:
            metrics.duplicates.labels(rule).inc()
        for kind in books.revisions:
            metrics.revisions.labels(kind).inc()
        metrics.batch_records.labels("deduplicate").observe(total)

    def _maybe_sweep(self, partition: int, state: DedupState) -> None:
        last = self.swept.setdefault(partition, state.watermark)
        if state.watermark - last >= SWEEP_EVERY_SECONDS:
            self.swept[partition] = state.watermark
            self.ctx.metrics.dedup_expired.inc(state.expire())


def _final(report: Report, retracted: int) -> Problem:
    return Problem(
        Reason.RETRACTED,
        "$.revision",
        f"({report.source}, {report.report_id}) was retracted at revision {retracted}; a retraction is final:"
        " file what is now known as a new report, under a new report_id",
    )


def _stale(report: Report, current: int) -> Problem:
    return Problem(
        Reason.STALE_REVISION,
        "$.revision",
        f"revision {report.revision} of ({report.source}, {report.report_id}) differs from what was accepted"
        f" and is not newer than the current revision {current}: send corrections with a higher revision",
    )
