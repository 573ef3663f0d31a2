"""Ingest: validate → dead-letter → deduplicate.

Two agents, because `(source, report_id)` must meet in one place while reporters key records as
they like:
- `ingest-validate` reads `ceasefire.reports.v1` (any key). Bad records go to the DLQ (original key
  and bytes, headers say why). Valid reports are regrouped by a stable hash of `source` into
  `ReportBatch` records on the internal by-source topic (many reports per record, partition chosen
  here, no key). Stateless.
- `ingest-deduplicate` reads the by-source topic. State: table `dedup` (changelogged), per partition,
  `(source, report_id)` and content fingerprints with the first report's `observed_at`. Writes each
  accepted report to `ceasefire.reports.accepted.v1` (key `ceasefire_id`, for subscribers) and, batched,
  to the internal `ceasefire.internal.reports.accepted.v1` (`AcceptedBatch` records, partition = the
  accepted topic's partition of the ceasefire: correlate's input); each repeat goes to
  `ceasefire.reports.duplicates.v1` (key `source`).

Order of writes, so that a crash re-emits but never drops: outputs are sent and acknowledged, then
the table is updated, then offsets are committed (Faust acks the events after the body returns).
"""

from __future__ import annotations

import base64
import logging
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import faust

from schemas.ingest import Duplicate, Origin, ReportBatch, SourcedReport
from schemas.report import Report
from schemas.topics import Role
from services.ingest.deadletter import dead_letter_headers
from services.ingest.dedup import DedupState
from services.ingest.validate import Problem, Reason, Rules, primary_reason, validate
from services.runtime.codec import encode, pack
from services.runtime.context import Context
from services.runtime.failure import describe
from services.runtime.stage import AheadOfTime, Outbox, decode_batch, not_ahead, serve
from services.runtime.state import PartitionEntries, changelog_sent, fenced_table, key_partition

SWEEP_EVERY_SECONDS = 24 * 3600.0  # event time between expiry sweeps of one partition
ORIGIN_HEADER = "ceasefire.origin"  # on accepted reports: `partition:offset` of the record on the ingest topic
log = logging.getLogger(__name__)


def source_partition(source: str, partitions: int) -> int:
    """Stable across processes and restarts (unlike Python's salted `hash`)."""
    return zlib.crc32(source.encode()) % partitions


def chunk_batches(items: list[bytes]) -> list[bytes]:
    """Join encoded SourcedReports into ReportBatch records of at most ~MAX_BATCH_BYTES each."""
    return [b'{"reports":[' + b",".join(run) + b"]}" for run in pack(items) if run]


@dataclass
class Books:
    """What one dedup batch ruled, to count once its outputs are acknowledged."""

    rules: list[str] = field(default_factory=list)  # each duplicate's rule
    dead: list[str] = field(default_factory=list)  # each dead letter's reason
    redelivered: int = 0
    by_ceasefire: dict[int, list[bytes]] = field(default_factory=lambda: defaultdict(list))  # correlate's input


class IngestStage:
    """The two agents' bodies: move a batch between topics and the dedup table."""

    def __init__(self, app: faust.App, ctx: Context) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.app = app
        self.rules = Rules(
            ctx.registry, max_bytes=s.max_report_bytes, max_future=s.max_future, before_effective=s.before_effective
        )
        self.retention = s.dedup_retention_hours * 3600
        self.partitions = s.partitions
        self.topics = {role: s.topic(role) for role in Role}
        self.dedup = fenced_table(app, "dedup", partitions=s.partitions, key_type=str, value_type=str)
        self.swept: dict[int, float] = {}

    async def validate_batch(self, events: list[faust.EventT]) -> None:
        now = datetime.now(UTC)
        outbox = Outbox(self.app, self.ctx, "validate")
        by_partition: dict[int, list[bytes]] = defaultdict(list)
        for event in events:
            msg = event.message
            try:
                verdict = validate(msg.value, self.rules, now)
            except Exception as exc:  # noqa: BLE001 - validate never raises by contract; if a defect makes it,
                log.exception("validation raised on record %s[%d]@%d", msg.topic, msg.partition, msg.offset)
                verdict = [Problem(Reason.UNJUDGEABLE, "$", describe(exc))]  # that record's fault, not the stage's
            if isinstance(verdict, list):
                headers = dead_letter_headers(msg.topic, msg.partition, msg.offset, verdict)
                await outbox.send(Role.DEAD_LETTERS, msg.key, msg.value, None, headers)
                self.ctx.metrics.reports.labels("dead_lettered", primary_reason(verdict).value).inc()
            else:
                item = SourcedReport(
                    origin=Origin(partition=msg.partition, offset=msg.offset),
                    report=verdict,
                    raw=msg.value.decode(),
                    raw_key=None if msg.key is None else base64.b64encode(msg.key).decode(),
                )
                by_partition[source_partition(verdict.source, self.partitions)].append(encode(item))
        for partition, items in by_partition.items():
            for record in chunk_batches(items):
                await outbox.send(Role.BY_SOURCE, None, record, partition)
        await outbox.flush()
        self.ctx.metrics.batch_records.labels("validate").observe(len(events))

    async def deduplicate_batch(self, events: list[faust.EventT]) -> None:
        """All the ReportBatch records taken at once: one round of acknowledgements for all of them."""
        states: dict[int, DedupState] = {}
        outbox = Outbox(self.app, self.ctx, "deduplicate")
        books = Books()
        total = 0
        for message, batch in await decode_batch(events, Role.BY_SOURCE, outbox):
            partition = message.partition
            state = states.get(partition)
            if state is None:
                entries = PartitionEntries(self.dedup, partition)
                state = states[partition] = DedupState(entries, self.retention, scope=f"{partition}/")
            total += len(batch.reports)
            await self._decide(batch, state, outbox, books)
        for target, records in books.by_ceasefire.items():  # correlate's input: the same reports, batched
            for chunk in chunk_batches(records):
                await outbox.send(Role.ACCEPTED_BATCHES, None, chunk, target)
        await outbox.flush()
        for partition, state in states.items():
            state.commit()  # only after the acknowledgements: a crash before this line re-emits, never drops
            self._maybe_sweep(partition, state)
        self._count(total, books)
        await changelog_sent(self.app)

    async def _decide(self, batch: ReportBatch, state: DedupState, outbox: Outbox, books: Books) -> None:
        """Rule on each report of one partition's batch and send its record (accepted, duplicate or
        dead letter); a re-delivery is booked already and sends nothing."""
        now, limit = datetime.now(UTC), self.rules.max_future
        for item in batch.reports:
            report, origin = item.report, item.where
            try:  # validation bounds it: one this far ahead did not come from it
                not_ahead(report.observed_at, now, limit, "observed_at")
            except AheadOfTime as ahead:
                await self._dead_letter(outbox, item, Problem(Reason.FUTURE_OBSERVED_AT, "$.observed_at", str(ahead)), books)
                continue
            try:
                decision = state.decide(report, origin)
            except Exception as exc:  # noqa: BLE001 - a defect on one report must not stop dedup
                log.exception("dedup raised on report %s; dead-lettered as unjudgeable", origin)
                await self._dead_letter(outbox, item, Problem(Reason.UNJUDGEABLE, "$", describe(exc)), books)
                continue
            if decision.outcome == "redelivered":
                books.redelivered += 1
                continue
            if decision.outcome == "too_old":
                await self._dead_letter(outbox, item, self._too_old(report, state), books)
                continue
            if decision.rule is None:
                record = encode(report)  # once, for the public topic and correlate's batches
                await outbox.publish(Role.ACCEPTED, report, headers=[(ORIGIN_HEADER, origin.encode())], encoded=record)
                books.by_ceasefire[key_partition(report.ceasefire_id, self.partitions)].append(record)
            else:
                books.rules.append(decision.rule)
                duplicate = Duplicate(
                    source=report.source,
                    report_id=report.report_id,
                    rule=decision.rule,
                    duplicate_of=decision.duplicate_of or "",
                    origin=item.origin,
                )
                await outbox.publish(Role.DUPLICATES, duplicate)

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
        metrics.batch_records.labels("deduplicate").observe(total)

    def _maybe_sweep(self, partition: int, state: DedupState) -> None:
        last = self.swept.setdefault(partition, state.watermark)
        if state.watermark - last >= SWEEP_EVERY_SECONDS:
            self.swept[partition] = state.watermark
            self.ctx.metrics.dedup_expired.inc(state.expire())


def install(app: faust.App, ctx: Context) -> None:
    """Register the ingest agents and the dedup table on `app`."""
    stage = IngestStage(app, ctx)
    serve(app, ctx, "ingest-validate", Role.REPORTS, stage.validate_batch, max_records=ctx.settings.batch_max)
    serve(app, ctx, "ingest-deduplicate", Role.BY_SOURCE, stage.deduplicate_batch)
