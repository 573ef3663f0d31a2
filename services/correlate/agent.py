"""Correlate: accepted reports → incidents.

Input: `ceasefire.internal.reports.accepted.v1`, `AcceptedBatch` records (the accepted reports of
one ingest batch, on the accepted topic's partition of their ceasefire: one ceasefire's reports meet
on one partition). Output: `ceasefire.incidents.v1`, key `incident_id`, the whole incident per version; and
`ceasefire.internal.incidents.by-ceasefire.v1`, one `IncidentBatch` (schemas/incident.py; assembled
here from the already-encoded incidents) per input partition and batch,
written to the same partition number, for the alert stage.
State: table `correlation` (changelogged), per ceasefire the entries a `Correlator` persists
(`<ceasefire_id>\\x1f<key>`); the in-memory `Correlator` is rebuilt from it after each rebalance.

Order: the incidents' new versions are stored (`version_entries`), then the incidents are sent and
acknowledged, then the rest of the state is stored, then offsets commit. A crash anywhere re-processes
the batch against a state that holds every published version: the rebuilt `Correlator` reproduces the
incidents under higher versions, and never publishes one version with two contents.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
import orjson

from schemas.incident import Incident
from schemas.ingest import AcceptedBatch, Mark
from schemas.report import AcceptedReport
from schemas.topics import Role
from services.correlate.ordering import QUIET
from services.correlate.persist import PUBLISHED_KEY
from services.correlate.state import Correlator, version_entries
from services.runtime.ceasefire_state import CeasefireStates
from services.runtime.codec import encode, pack
from services.runtime.context import Context
from services.runtime.failure import or_die
from services.runtime.stage import AheadOfTime, Outbox, decode_batch, not_ahead, serve
from services.runtime.state import changelog_sent

EVICT_EVERY_SECONDS = 300.0  # event time between evictions of one ceasefire


class Refused(Exception):  # noqa: N818 - a report (or mark) refused, not an error of the stage
    """What a batch cannot take: a report the correlator raised on, or a time ahead of now."""

    def __init__(self, what: object, message: Any, cause: Exception, body: bytes, touched: dict[str, int]) -> None:
        super().__init__(str(cause))
        self.what, self.message, self.cause, self.body, self.touched = what, message, cause, body, dict(touched)


def _ceasefires(batch: AcceptedBatch) -> list[str]:
    """The ceasefires a record speaks of, by its reports or its marks."""
    return sorted({r.ceasefire_id for r in batch.reports} | {c for marks in batch.marks.values() for c in marks})


def incident_batches(
    encoded: list[bytes], watermarks: dict[str, str], newest: list[datetime] | None = None
) -> list[bytes]:
    """IncidentBatch records of at most ~MAX_BATCH_BYTES; the watermarks ride on the last one, so
    the alert stage moves event time only after every incident. `newest[i]` is the newest
    `ingested_at` of incident `i`'s reports: each record carries the newest of its own incidents."""
    runs = pack(encoded) or [[]]  # without incidents: one record for the watermarks
    last = len(runs) - 1
    records, start = [], 0
    for n, run in enumerate(runs):
        head = b'{"watermarks":' + orjson.dumps(watermarks if n == last else {})
        if newest and run:
            head += b',"newest_ingested_at":' + orjson.dumps(max(newest[start : start + len(run)]))
        records.append(head + b',"incidents":[' + b",".join(run) + b"]}")
        start += len(run)
    return records


class CorrelateStage:
    def __init__(self, app: faust.App, ctx: Context) -> None:
        self.app, self.ctx = app, ctx
        upstreams = ctx.settings.partitions  # the dedup partitions whose marks make the low watermark
        self.states: CeasefireStates[Correlator] = CeasefireStates.of_stage(
            app, ctx, "correlation", Role.ACCEPTED_BATCHES, lambda c, store: Correlator(c, store, upstreams)
        )
        self.correlators = self.states.states  # ceasefire id → correlator, for the API and gauges
        self.evicted_at: dict[str, float] = {}
        # ceasefire id → (processing time, event time) when it last took a report: a quiet ceasefire's
        # event time runs on from there with the wall clock (quiet_marks)
        self.last_taken: dict[str, tuple[float, datetime]] = {}
        self.watermarks_sent: dict[str, datetime] = {}  # the alert stage has each ceasefire's event time up to here
        self.now = datetime.now(UTC)  # processing time of the batch in hand
        # Correlators of revoked partitions are dropped and rebuilt from the table when needed; after
        # a restore those owned now are built at once, so the read API and gauges answer.
        self.states.follow_rebalances(lambda dropped: None, lambda built: None)
        for ceasefire in ctx.registry.ceasefires:  # at zero from the start: a dashboard shows "none late"
            ctx.metrics.late_reports.labels(ceasefire.id)

    def correlator(self, ceasefire_id: str, partition: int) -> Correlator | None:
        # None only for a ceasefire gone from the registry since its reports were accepted
        return self.states.get(ceasefire_id, partition)

    async def correlate_batch(self, events: list[faust.EventT]) -> None:
        """All the AcceptedBatch records taken at once: one round of writes and sends for all of them.
        Each record's reports are held, its marks move the low watermark, and the reports event time
        has passed are correlated in event-time order (services/correlate/ordering.py). Order
        (services/runtime/stage.py): apply; store the new versions (the reservation) and await the
        changelog; send the incidents and await them; store that they were sent (`~published`) and
        await it; store the rest; await the changelog."""
        outbox = Outbox(self.app, self.ctx, "correlate")
        self.now = datetime.now(UTC)  # bounds the times read (stage.not_ahead), never decides anything
        decoded = await decode_batch(events, Role.ACCEPTED_BATCHES, outbox)
        published, touched = await self.take(decoded, outbox)
        rest: dict[str, dict[str, str | None]] = {}
        for ceasefire_id in touched:
            correlator = self.correlators[ceasefire_id]
            self._maybe_evict(ceasefire_id, correlator)
            reservations, rest[ceasefire_id] = version_entries(correlator.take_changes())
            self.states.store(ceasefire_id, reservations)
        await changelog_sent(self.app)
        await self._publish(published, touched, outbox)
        # That the records are out, alone and acknowledged before the rest: a crash after it lets the
        # replay hold its rebuilt records back (services/correlate/catchup.py); one round trip a batch.
        for ceasefire_id in touched:
            if (marker := rest[ceasefire_id].pop(PUBLISHED_KEY, None)) is not None:
                self.states.store(ceasefire_id, {PUBLISHED_KEY: marker})
        await changelog_sent(self.app)
        for ceasefire_id in touched:
            self.states.store(ceasefire_id, rest[ceasefire_id])
        await changelog_sent(self.app)

    async def take(
        self, decoded: list[tuple[Any, AcceptedBatch]], outbox: Outbox
    ) -> tuple[dict[int, list[Incident]], dict[str, int]]:
        """The decoded records applied: the incident records by partition and the ceasefires touched.
        As stage.apply_isolated, by report: a report (or mark) refused is dead-lettered, the states it
        touched rebuilt from the table and the batch applied again without it."""
        refused: set[object] = set()
        while True:
            await self.states.built((c, m.partition) for m, batch in decoded for c in _ceasefires(batch))
            try:
                return self._take(decoded, refused)
            except Refused as refusal:
                refused.add(refusal.what)
                for ceasefire_id in refusal.touched:
                    self.states.discard(ceasefire_id)
                await outbox.fault(refusal.message, refusal.cause, refusal.body)

    def _take(
        self, decoded: list[tuple[Any, AcceptedBatch]], refused: set[object]
    ) -> tuple[dict[int, list[Incident]], dict[str, int]]:
        published: dict[int, list[Incident]] = defaultdict(list)
        touched: dict[str, int] = {}  # ceasefire id → its partition
        for message, batch in decoded:
            for ceasefire_id in _ceasefires(batch):
                correlator = self.correlator(ceasefire_id, message.partition)
                if correlator is None:
                    continue  # a ceasefire gone from the registry since its reports were accepted
                touched[ceasefire_id] = message.partition
                self._hold(correlator, message, batch, refused, touched)
                released = [r for r in correlator.order.release() if r.identity not in refused]
                for report in released:
                    published[message.partition].extend(self._add(correlator, message, report, touched))
                if released and correlator.watermark is not None:
                    self.last_taken[ceasefire_id] = (time.monotonic(), correlator.watermark)
                low = correlator.order.low
                if low is not None and low.at is not None:
                    correlator.advance(low.at)
                    published[message.partition].extend(correlator.overdue())
        return published, touched

    def _hold(
        self, correlator: Correlator, message: Any, batch: AcceptedBatch, refused: set[object], touched: dict[str, int]
    ) -> None:
        """One record's reports of the correlator's ceasefire, then its marks (none ahead of now)."""
        ceasefire_id, limit = correlator.ceasefire.id, self.ctx.settings.max_future
        for report in batch.reports:
            if report.ceasefire_id == ceasefire_id and report.identity not in refused:
                try:
                    not_ahead(report.observed_at, self.now, limit, "observed_at")
                    not_ahead(report.ordered, self.now, limit, "ordered_at")
                except AheadOfTime as ahead:
                    raise Refused(report.identity, message, ahead, encode(report), touched) from ahead
                correlator.order.hold(report)
        for upstream, marks in sorted(batch.marks.items()):
            mark = marks.get(ceasefire_id)
            if mark is None or (what := ("mark", upstream, ceasefire_id, mark.at)) in refused:
                continue
            if mark.at is not None:
                try:
                    not_ahead(mark.at, self.now, limit, "mark")
                except AheadOfTime as ahead:
                    body = orjson.dumps({"upstream": upstream, "ceasefire_id": ceasefire_id, "at": mark.at.isoformat()})
                    raise Refused(what, message, ahead, body, touched) from ahead
            correlator.order.mark(upstream, mark)

    def _add(self, correlator: Correlator, message: Any, report: AcceptedReport, touched: dict[str, int]) -> list[Incident]:
        """Fold one released report in: its incident records, in publication order (state.py)."""
        try:
            changed = correlator.released(report)
        except Exception as error:  # noqa: BLE001 - one report's fault, not the stage's
            raise Refused(report.identity, message, error, encode(report), touched) from error
        if correlator.last_late:
            self.ctx.metrics.late_reports.labels(report.ceasefire_id).inc()
        return changed

    async def _publish(self, published: dict[int, list[Incident]], touched: dict[str, int], outbox: Outbox) -> None:
        """Incidents, then each partition's IncidentBatch records with the watermarks (also without
        incidents, when only event time moved: an idle flush, a quiet ceasefire)."""
        observed: list[tuple[list[Incident], list[datetime]]] = []
        moved = {
            c: wm for c in touched if (wm := self.correlators[c].published_watermark) is not None and self.watermarks_sent.get(c) != wm
        }
        for partition in sorted(published.keys() | {touched[c] for c in moved}):
            incidents = published.get(partition, [])
            encoded = [encode(incident) for incident in incidents]  # once, for both topics
            newest = [max(r.ingested_at for r in incident.reports) for incident in incidents]
            observed.append((incidents, newest))
            for incident, record in zip(incidents, encoded, strict=True):
                await outbox.publish(Role.INCIDENTS, incident, encoded=record)
            watermarks = {
                c: wm.isoformat()
                for c, p in touched.items()
                if p == partition and (wm := self.correlators[c].published_watermark) is not None
            }
            for batch in incident_batches(encoded, watermarks, newest):
                await outbox.send(Role.BY_CEASEFIRE, None, batch, partition)
        for ceasefire_id in touched:  # where the reports now are, for their receipts
            for placement in self.correlators[ceasefire_id].placements.take():
                await outbox.publish(Role.PLACEMENTS, placement)
        await outbox.flush()
        self.watermarks_sent.update(moved)
        for incidents, newest in observed:
            self._observe(incidents, newest)

    def _observe(self, incidents: list[Incident], newest: list[datetime]) -> None:
        now = datetime.now(UTC)
        metrics = self.ctx.metrics
        versions: Counter[tuple[str, str]] = Counter()
        latency = metrics.latency.labels("incident")
        for incident, ingested_at in zip(incidents, newest, strict=True):
            versions[incident.ceasefire_id, incident.status] += 1
            latency.observe(max(0.0, (now - ingested_at).total_seconds()))
        for labels, count in versions.items():
            metrics.incident_versions.labels(*labels).inc(count)

    async def quiet_marks(self) -> None:
        """Event time on a quiet ceasefire (every input partition idle, nothing held) runs on with the wall
        clock from its last report, never to "now": history a year behind stays a year behind. Each
        advance is a record on correlate's own input topic (a mark of upstream `quiet`), so a replay of
        that topic reproduces it; a replay at full speed has no silence, hence none."""
        outbox, now = Outbox(self.app, self.ctx, "correlate"), time.monotonic()
        for ceasefire_id, correlator in list(self.correlators.items()):
            watermark = correlator.watermark
            if watermark is None or not correlator.order.quiet:
                continue
            since, then = self.last_taken.setdefault(ceasefire_id, (now, watermark))
            at = then + timedelta(seconds=now - since)
            if at - watermark < timedelta(seconds=1):
                continue
            record = AcceptedBatch(reports=[], marks={QUIET: {ceasefire_id: Mark(at=at, idle=True)}})
            await outbox.send(Role.ACCEPTED_BATCHES, None, encode(record), self.states.partition_of[ceasefire_id])
        await outbox.flush()

    def _maybe_evict(self, ceasefire_id: str, correlator: Correlator) -> None:
        """Every few minutes of event time; and at once when reports arrived before the horizon (a
        partition catching up after the others), which otherwise stay until the watermark moves."""
        watermark = correlator.watermark
        if watermark is None:
            return
        mark = watermark.timestamp()
        if mark - self.evicted_at.setdefault(ceasefire_id, mark) >= EVICT_EVERY_SECONDS:
            self.evicted_at[ceasefire_id] = mark
            correlator.evict()
        elif correlator.stale():
            correlator.evict()


def install(app: faust.App, ctx: Context) -> None:
    """Register the correlate agent and its table on `app`."""
    stage = CorrelateStage(app, ctx)
    serve(app, ctx, "correlate", Role.ACCEPTED_BATCHES, stage.correlate_batch)

    @app.timer(max(1.0, ctx.settings.idle_seconds))
    async def quiet_ceasefires() -> None:
        await or_die("correlate-quiet", stage.quiet_marks())  # fenced: skipped; a fault ends the worker

    ctx.stages["correlate"] = stage  # the read API and the live view look incidents up here
