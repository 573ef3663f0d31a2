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

import asyncio
import base64
import logging
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import faust
import orjson

from schemas.ingest import PARTITION_MARKS, Duplicate, Mark, Origin, Rejected, ReportBatch, SourcedReport
from schemas.ingest import Problem as ReceiptProblem
from schemas.receipt import Receipt
from schemas.report import Report
from schemas.topics import Role
from services.ingest import receipts
from services.ingest.deadletter import dead_letter_headers
from services.ingest.dedup import Decision, DedupState
from services.ingest.validate import Named, Problem, Reason, Rules, named_report, primary_reason, validate
from services.runtime.codec import encode, pack
from services.runtime.context import Context
from services.runtime.failure import describe
from services.runtime.stage import AheadOfTime, Outbox, decode_batch, not_ahead, serve
from services.runtime.state import (
    PartitionEntries,
    changelog_sent,
    committed_offsets,
    fenced_table,
    key_partition,
)
from services.watermark import PartitionProgress, later, low_watermark

REBALANCE_QUIET_SECONDS = 3.0  # no idle marks this long after a revocation (see send_idle_marks)
KEPT_BATCHES = 64  # progress entries kept per ingest partition: more batches than one commit interval holds
SWEEP_EVERY_SECONDS = 24 * 3600.0  # event time between expiry sweeps of one partition
ORIGIN_HEADER = "ceasefire.origin"  # on accepted reports: `partition:offset` of the record on the ingest topic
log = logging.getLogger(__name__)


def source_partition(source: str, partitions: int) -> int:
    """Stable across processes and restarts (unlike Python's salted `hash`)."""
    return zlib.crc32(source.encode()) % partitions


MARKS_KEY = "marks\x1f"  # + dedup partition, in the dedup table (outside the partition's scope): its upstream marks


def chunk_batches(items: list[bytes], tail: bytes = b"") -> list[bytes]:
    """Join encoded reports into batch records of at most ~MAX_BATCH_BYTES each; `tail` (the fields
    after `reports`, e.g. `,"progress":{…}`) goes on the last, which exists even without reports."""
    runs = [run for run in pack(items) if run] or [[]]
    last = len(runs) - 1
    return [b'{"reports":[' + b",".join(run) + b"]" + (tail if n == last else b"") + b"}" for n, run in enumerate(runs)]


@dataclass
class Books:
    """What one dedup batch ruled, to count once its outputs are acknowledged."""

    rules: list[str] = field(default_factory=list)  # each duplicate's rule
    dead: list[str] = field(default_factory=list)  # each dead letter's reason
    redelivered: int = 0
    by_ceasefire: dict[int, list[bytes]] = field(default_factory=lambda: defaultdict(list))  # correlate's input
    marks: dict[int, dict[str, dict[str, Mark]]] = field(default_factory=lambda: defaultdict(dict))  # by target


class IngestStage:
    """The two agents' bodies: move a batch between topics and the dedup table."""

    def __init__(self, app: faust.App, ctx: Context) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.app = app
        self.rules = Rules(
            ctx.registry,
            max_bytes=s.max_report_bytes,
            max_future=s.max_future,
            before_effective=s.before_effective,
            sources=ctx.sources,
            sources_enforced=s.sources_enforced,
            keys=ctx.keys,
        )
        self.retention = s.dedup_retention_hours * 3600
        self.partitions = s.partitions
        self.topics = {role: s.topic(role) for role in Role}
        self.dedup = fenced_table(app, "dedup", partitions=s.partitions, key_type=str, value_type=str)
        self.swept: dict[int, float] = {}
        # event-time progress (services/watermark.py): validate's per ingest partition, what it last
        # sent; dedup's marks per dedup partition (of every ingest partition) and what it last sent
        self.progress = PartitionProgress((c.id for c in ctx.registry.ceasefires), s.idle_seconds)
        # each ingest partition's progress after its recent batches (offset after the batch, newest per
        # ceasefire): a worker that takes a partition over resumes its progress where the records it
        # re-reads begin, so `ordered_at` does not depend on a restart (docs/event-time.md)
        self.progress_table = fenced_table(app, "progress", partitions=s.partitions, key_type=str, value_type=str)
        self.read_to: dict[int, int] = {}  # ingest partition → offset after the last record validated
        self.kept: dict[int, list[list[Any]]] = {}  # ingest partition → its [offset after a batch, newest] kept
        self.progress_sent: dict[str, dict[str, Mark]] = {}
        self.progress_lock = asyncio.Lock()
        self.revoked_at = -REBALANCE_QUIET_SECONDS
        self.upstream: dict[int, dict[str, dict[str, Mark]]] = {}
        self.lows_sent: dict[tuple[int, str], Mark] = {}

    async def validate_batch(self, events: list[faust.EventT]) -> None:
        async with self.progress_lock:  # the progress timer must not send a mark ahead of these reports
            await self._validate(events)

    async def _validate(self, events: list[faust.EventT]) -> None:
        now, clock = datetime.now(UTC), time.monotonic()
        outbox = Outbox(self.app, self.ctx, "validate")
        by_partition: dict[int, list[bytes]] = defaultdict(list)
        rejected: dict[int, list[bytes]] = defaultdict(list)  # for the receipts of the reports they name
        for event in events:
            msg = event.message
            if msg.partition not in self.read_to:
                self._resume(msg.partition, msg.offset, clock)
            self.read_to[msg.partition] = msg.offset + 1
            try:
                verdict = validate(msg.value, self.rules, now, msg.headers)
            except Exception as exc:  # noqa: BLE001 - validate never raises by contract; if a defect makes it,
                log.exception("validation raised on record %s[%d]@%d", msg.topic, msg.partition, msg.offset)
                verdict = [Problem(Reason.UNJUDGEABLE, "$", describe(exc))]  # that record's fault, not the stage's
            if isinstance(verdict, list):
                headers = dead_letter_headers(msg.topic, msg.partition, msg.offset, verdict)
                await outbox.send(Role.DEAD_LETTERS, msg.key, msg.value, None, headers)
                self.ctx.metrics.reports.labels("dead_lettered", primary_reason(verdict).value).inc()
                named = named_report(msg.value, self.rules)
                if named is not None:
                    item = _rejected(named, verdict, Origin(partition=msg.partition, offset=msg.offset))
                    rejected[source_partition(named.source, self.partitions)].append(encode(item))
            else:
                ordered = self.progress.order(msg.partition, verdict.ceasefire_id, verdict.observed_at, clock)
                item = SourcedReport(
                    origin=Origin(partition=msg.partition, offset=msg.offset),
                    report=verdict.model_copy(update={"ordered_at": ordered}),
                    raw=msg.value.decode(),
                    raw_key=None if msg.key is None else base64.b64encode(msg.key).decode(),
                )
                by_partition[source_partition(verdict.source, self.partitions)].append(encode(item))
        await self._send_progress(by_partition, outbox, rejected)
        self._keep_progress({event.message.partition for event in events})
        self.ctx.metrics.batch_records.labels("validate").observe(len(events))

    def _resume(self, partition: int, offset: int, clock: float) -> None:
        """Take a partition up at `offset` with the progress it had there (the latest kept at or
        before it: a restart re-reads from the last committed batch end)."""
        self.progress.drop(partition)
        self.progress.take(partition, clock)
        stored = self.progress_table.entry(partition, str(partition))
        kept = self.kept[partition] = [e for e in (orjson.loads(stored) if stored else []) if e[0] <= offset]
        if kept:
            newest = max(kept, key=lambda entry: entry[0])[1]
            self.progress.newest[partition] = {c: datetime.fromisoformat(at) for c, at in newest.items()}

    def _keep_progress(self, partitions: set[int]) -> None:
        """Each partition's progress after this batch, beside the last KEPT_BATCHES (read once, in
        `_resume`; kept in memory since)."""
        for partition in partitions:
            newest = {c: at.isoformat() for c, at in self.progress.newest.get(partition, {}).items()}
            kept = self.kept[partition] = [*self.kept[partition][-(KEPT_BATCHES - 1) :], [self.read_to[partition], newest]]
            self.progress_table.write_entries(partition, {str(partition): orjson.dumps(kept).decode()})

    def forget_partitions(self, revoked: set[int]) -> None:
        """Partitions taken away: their progress is resumed from the table if they come back."""
        self.revoked_at = time.monotonic()
        for partition in revoked:
            self.read_to.pop(partition, None)
            self.kept.pop(partition, None)
            self.progress.drop(partition)
            self.progress_sent.pop(str(partition), None)

    async def _send_progress(
        self, by_partition: dict[int, list[bytes]], outbox: Outbox, rejected: dict[int, list[bytes]] | None = None
    ) -> None:
        """The batch's reports (and the rejections for their receipts), then every owned ingest
        partition's marks when they changed, to every dedup partition (after the reports on each:
        in-band, so a mark never overtakes a report)."""
        progress, rejected = self._progress(), rejected or {}
        tail = b',"progress":' + PARTITION_MARKS.dump_json(progress) if progress else b""
        for partition in range(self.partitions) if progress else sorted(by_partition.keys() | rejected.keys()):
            notes = rejected.get(partition)
            noted = b',"rejected":[' + b",".join(notes) + b"]" if notes else b""
            for record in chunk_batches(by_partition.get(partition, []), noted + tail):
                await outbox.send(Role.BY_SOURCE, None, record, partition)
        await outbox.flush()
        self.progress_sent.update(progress)

    def _progress(self) -> dict[str, dict[str, Mark]]:
        """The marks of the owned ingest partitions that changed since last sent."""
        consumer, topic, clock = self.app.consumer, self.topics[Role.REPORTS], time.monotonic()
        owned = sorted(tp for tp in consumer.assignment() if tp.topic == topic)
        committed = committed_offsets(consumer)
        changed: dict[str, dict[str, Mark]] = {}
        for tp in owned:
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue  # not fetched yet (or the broker is away): nothing known has changed
            position = max(self.read_to.get(tp.partition, 0), committed.get(tp) or 0)
            caught_up = position >= highwater
            marks = self.progress.marks(tp.partition, caught_up, clock)
            if self.progress_sent.get(str(tp.partition)) != marks:
                changed[str(tp.partition)] = marks
        idle, sent = self.ctx.metrics.idle_partitions, self.progress_sent | changed
        for ceasefire_id in self.progress.ceasefires:
            idle.labels(ceasefire_id).set(sum(1 for tp in owned if (m := sent.get(str(tp.partition), {}).get(ceasefire_id)) and m.idle))
        return changed

    async def send_idle_marks(self) -> None:
        """Processing-time side of the idle rule: a partition that went quiet says so without a report.
        Not within REBALANCE_QUIET_SECONDS of a revocation: a broker replaced on the same address
        revokes every partition, and marks sent then would land on the other cluster before the
        broker watch (services/runtime/watchdog.py, every 2 s) ends the worker."""
        if time.monotonic() - self.revoked_at < REBALANCE_QUIET_SECONDS:
            return
        async with self.progress_lock:
            if self._progress():
                await self._send_progress({}, Outbox(self.app, self.ctx, "validate"))

    async def deduplicate_batch(self, events: list[faust.EventT]) -> None:
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
                marks = PARTITION_MARKS.dump_json(self.upstream[partition]).decode()
                self.dedup.write_entries(partition, {f"{MARKS_KEY}{partition}": marks})
        self._count(total, books)
        await changelog_sent(self.app)

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
            elif decision.rule is None:
                record = encode(report)  # once, for the public topic and correlate's batches
                await outbox.publish(Role.ACCEPTED, report, headers=[(ORIGIN_HEADER, origin.encode())], encoded=record)
                books.by_ceasefire[key_partition(report.ceasefire_id, self.partitions)].append(record)
                await self._file(state, outbox, receipts.accepted(state.receipt(*report.identity), report, item.origin, now), report)
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
        previous = state.receipt(*report.identity)
        if decision.rule == "exact":
            receipt = receipts.repeated(previous, report, item.origin, now)
        else:
            receipt = receipts.resubmitted(previous, report, of, item.origin, now)
        await self._file(state, outbox, receipt, report)

    async def _reject(self, state: DedupState, outbox: Outbox, item: SourcedReport, problem: Problem, books: Books) -> None:
        """Dead-letter a report dedup cannot accept, and note it on the report's receipt."""
        await self._dead_letter(outbox, item, problem, books)
        report = item.report
        previous = state.receipt(*report.identity)
        receipt = receipts.rejected(
            previous, report.identity, problem.reason.value, [_problem(problem)], item.origin,
            datetime.now(UTC), report.ceasefire_id, report.revision,
        )
        if receipt is not previous:  # the same: this very record, read again
            await self._file(state, outbox, receipt, report)

    async def _note_rejection(self, state: DedupState, rejection: Rejected, outbox: Outbox) -> None:
        """A record validation dead-lettered, on the receipt of the report it names."""
        identity = (rejection.source, rejection.report_id)
        previous = state.receipt(*identity)
        receipt = receipts.rejected(
            previous, identity, rejection.reason, rejection.problems, rejection.origin,
            datetime.now(UTC), rejection.ceasefire_id, rejection.revision,
        )
        if receipt is not previous:
            await self._file(state, outbox, receipt, None)

    async def _file(self, state: DedupState, outbox: Outbox, receipt: Receipt, report: Report | None) -> None:
        """Publish a receipt and stage it with the partition's state (stored after the outputs are acknowledged)."""
        await outbox.publish(Role.RECEIPTS, receipt)
        state.file_receipt(receipt, None if report is None else report.observed_at.timestamp())

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


def _problem(problem: Problem) -> ReceiptProblem:
    return ReceiptProblem(reason=problem.reason.value, path=problem.path, message=problem.message)


def _rejected(named: Named, problems: list[Problem], origin: Origin) -> Rejected:
    return Rejected(
        source=named.source, report_id=named.report_id, ceasefire_id=named.ceasefire_id, revision=named.revision,
        reason=primary_reason(problems).value, problems=[_problem(p) for p in problems], origin=origin,
    )


def _stale(report: Report, current: int) -> Problem:
    return Problem(
        Reason.STALE_REVISION,
        "$.revision",
        f"revision {report.revision} of ({report.source}, {report.report_id}) differs from what was accepted"
        f" and is not newer than the current revision {current}: send corrections with a higher revision",
    )


def install(app: faust.App, ctx: Context) -> None:
    """Register the ingest agents and the dedup table on `app`."""
    stage = IngestStage(app, ctx)
    serve(app, ctx, "ingest-validate", Role.REPORTS, stage.validate_batch, max_records=ctx.settings.batch_max)
    serve(app, ctx, "ingest-deduplicate", Role.BY_SOURCE, stage.deduplicate_batch)

    reports_topic = ctx.settings.topic(Role.REPORTS)

    async def revoked(sender: faust.App, revoked: set[faust.types.TP], **_: object) -> None:
        stage.forget_partitions({tp.partition for tp in revoked if tp.topic == reports_topic})

    app.on_partitions_revoked.connect(revoked)

    if ctx.settings.http_ingest_port:

        @app.task
        async def http_ingest() -> None:
            """POST /reports (services/ingest/http.py), for as long as the worker runs."""
            from services.ingest.http import HttpIngest

            server = HttpIngest(ctx, stage.rules)
            await server.start()
            try:
                await asyncio.Event().wait()
            finally:
                await server.stop()

    @app.timer(min(1.0, max(0.1, ctx.settings.idle_seconds / 4)))
    async def ingest_progress() -> None:
        await stage.send_idle_marks()
