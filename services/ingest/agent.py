"""Ingest: validate → dead-letter → deduplicate.

Two agents, because `(source, report_id)` must meet in one place while reporters key records as
they like:
- `ingest-validate` (here) reads `ceasefire.reports.v1` (any key). Bad records go to the DLQ (original
  key, bytes and headers; headers say why), and those that name a report go on to its receipt. Valid
  reports are regrouped by a stable hash of `source` into `ReportBatch` records on the internal
  by-source topic (many reports per record, partition chosen here, no key), with each ingest
  partition's event-time progress after them. Its only state: table `progress`.
- `ingest-deduplicate` (services/ingest/dedup_stage.py) reads the by-source topic.
`POST /reports` (services/ingest/http.py) runs beside them when enabled.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import faust
import orjson

from schemas.ingest import PARTITION_MARKS, Mark, Origin, Rejected, SourcedReport
from schemas.topics import Role
from services.ingest import receipts
from services.ingest.batches import chunk_batches, source_partition
from services.ingest.deadletter import dead_letter_headers
from services.ingest.dedup_stage import DedupStage
from services.ingest.validate import Named, Problem, Reason, Rules, named_report, primary_reason, validate
from services.runtime.codec import encode
from services.runtime.context import Context
from services.runtime.failure import describe, or_die
from services.runtime.stage import Outbox, serve
from services.runtime.state import (
    committed_offsets,
    fenced_table,
    positioned,
)
from services.watermark import PartitionProgress

REBALANCE_QUIET_SECONDS = 3.0  # no idle marks this long after a revocation (see send_idle_marks)
KEPT_BATCHES = 64  # progress entries kept per ingest partition: more batches than one commit interval holds
log = logging.getLogger(__name__)


class IngestStage:
    """The validate agent's body, and the deduplicate agent's (`dedup_stage`, services/ingest/dedup_stage.py)."""

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
        self.partitions = s.partitions
        self.topics = {role: s.topic(role) for role in Role}
        self.dedup_stage = DedupStage(app, ctx, self.rules)
        # event-time progress (services/watermark.py) per ingest partition, and what was last sent
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
                    item = _rejected(named, verdict, Origin(partition=msg.partition, offset=msg.offset))  # for its receipt
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
        committed, ready = committed_offsets(consumer), positioned(consumer)
        changed: dict[str, dict[str, Mark]] = {}
        for tp in owned:
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue  # not fetched yet (or the broker is away): nothing known has changed
            if tp.partition not in self.kept:
                if tp not in ready:
                    continue  # its committed offset and progress entry are not known yet: say nothing
                # taken over with nothing left to read: its progress is the one kept at the committed
                # offset, not "no report yet" (that mark would erase event time downstream: a stall)
                self._resume(tp.partition, committed.get(tp) or 0, clock)
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


def _rejected(named: Named, problems: list[Problem], origin: Origin) -> Rejected:
    return Rejected(
        source=named.source, report_id=named.report_id, ceasefire_id=named.ceasefire_id, revision=named.revision,
        reason=primary_reason(problems).value, problems=[receipts.problem(p) for p in problems], origin=origin,
    )


def install(app: faust.App, ctx: Context) -> None:
    """Register the ingest agents and the dedup table on `app`."""
    stage = IngestStage(app, ctx)
    serve(app, ctx, "ingest-validate", Role.REPORTS, stage.validate_batch, max_records=ctx.settings.batch_max)
    serve(app, ctx, "ingest-deduplicate", Role.BY_SOURCE, stage.dedup_stage.deduplicate_batch)

    reports_topic, by_source_topic = ctx.settings.topic(Role.REPORTS), ctx.settings.topic(Role.BY_SOURCE)

    async def revoked(sender: faust.App, revoked: set[faust.types.TP], **_: object) -> None:
        stage.forget_partitions({tp.partition for tp in revoked if tp.topic == reports_topic})
        stage.dedup_stage.forget_partitions({tp.partition for tp in revoked if tp.topic == by_source_topic})

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
        await or_die("ingest-progress", stage.send_idle_marks())  # fenced: skipped; a fault ends the worker
