"""Alert: incident versions → alerts and fragility snapshots.

Input: `ceasefire.internal.incidents.by-ceasefire.v1` (`IncidentBatch`, read as `IncidentVersionBatch`:
the reports are skipped; partitioned like the accepted topic, so one ceasefire's incidents meet here).
Output: `ceasefire.alerts.v1` (key `fingerprint`) and
`ceasefire.fragility.v1` (key `ceasefire_id`): a snapshot on every change, and the latest again
every `FRAGILITY_REPEAT_SECONDS` of processing time so a dashboard never goes stale.
State: table `alerting` (changelogged), per ceasefire the entries an `AlertEngine` persists; the
engine is rebuilt from it after a rebalance. Order: publish and await, then store the engine's changes
(its journal first) and await them, then the offset may commit. A crash before the journal is stored
leaves the batch's starting state, and re-processing publishes the same records again; after it, the
rebuild completes the batch and re-processing publishes nothing (docs/alerts.md, "Crash safety").
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

import faust

from schemas.alert import Alert
from schemas.fragility import FragilitySnapshot
from schemas.incident import IncidentVersionBatch
from schemas.topics import Role
from services.alert.rules import AlertEngine
from services.runtime.batching import bounded_batches
from services.runtime.ceasefire_state import CeasefireStates
from services.runtime.codec import decode_or_count, encode, raw_topic
from services.runtime.context import Context
from services.runtime.failure import or_die
from services.runtime.tables import changelog_sent

FRAGILITY_REPEAT_SECONDS = 60.0


class AlertStage:
    def __init__(self, app: faust.App, ctx: Context) -> None:
        self.app = app
        self.ctx = ctx
        self.topics = {role: ctx.settings.topic(role) for role in Role}
        self.states: CeasefireStates[AlertEngine] = CeasefireStates(
            app,
            ctx.registry,
            "alerting",
            self.topics[Role.BY_CEASEFIRE],
            ctx.settings.partitions,
            lambda ceasefire, persisted, _stored: AlertEngine(ceasefire, persisted=persisted),
        )
        self.engines = self.states.states  # ceasefire id → engine, for the collector and live view
        self.snapshots: dict[str, FragilitySnapshot] = {}
        self.recent: deque[Alert] = deque(maxlen=12)  # the newest alert records, for the live view

        self.states.follow_rebalances(self.forget, self.warm)

    def forget(self, dropped: list[str]) -> None:
        for ceasefire_id in dropped:
            self.snapshots.pop(ceasefire_id, None)

    def warm(self, built: list[str]) -> None:
        """After a restore, the fragility gauges of the ceasefires owned now answer at once."""
        for ceasefire_id in built:
            self.snapshots.setdefault(ceasefire_id, self.engines[ceasefire_id].fragility())

    def engine(self, ceasefire_id: str, partition: int) -> AlertEngine | None:
        return self.states.get(ceasefire_id, partition)

    async def alert_batch(self, events: list[faust.EventT]) -> None:
        """The IncidentBatch records taken at once, in order: one round of sends and writes for all."""
        alerts: list[Alert] = []
        touched: set[str] = set()
        decoded: list[tuple[IncidentVersionBatch, int]] = []
        for event in events:
            batch = decode_or_count(IncidentVersionBatch, event.message.value, "alert", self.ctx)
            if batch is not None:
                decoded.append((batch, event.message.partition))
        await self.states.built(
            (ceasefire_id, partition)
            for batch, partition in decoded
            for ceasefire_id in (*batch.watermarks, *(incident.ceasefire_id for incident in batch.incidents))
        )
        batches = []
        for batch, partition in decoded:
            self._observe(batch, partition, alerts, touched)
            batches.append(batch)
        newest = max((b.newest_ingested_at for b in batches if b.newest_ingested_at is not None), default=None)
        snapshots = [s for c in sorted(touched) if (s := self._changed_snapshot(c)) is not None]
        await self._publish(alerts, snapshots, newest)
        for ceasefire_id in touched:
            self.states.store(ceasefire_id, self.engines[ceasefire_id].take_changes())
        await changelog_sent(self.app)

    def _observe(self, batch: IncidentVersionBatch, partition: int, alerts: list[Alert], touched: set[str]) -> None:
        for incident in batch.incidents:
            engine = self.engine(incident.ceasefire_id, partition)
            if engine is not None:
                alerts.extend(engine.observe(incident))
                touched.add(incident.ceasefire_id)
                if incident.version == 1:
                    sector = incident.sectors[0] if incident.sectors else "unknown"
                    self.ctx.metrics.incidents.labels(incident.ceasefire_id, sector, incident.severity.name.lower()).inc()
        for ceasefire_id, watermark in batch.watermarks.items():
            engine = self.engine(ceasefire_id, partition)
            if engine is not None:
                alerts.extend(engine.advance(watermark))
                touched.add(ceasefire_id)

    def _changed_snapshot(self, ceasefire_id: str) -> FragilitySnapshot | None:
        snapshot = self.engines[ceasefire_id].fragility()
        if self.snapshots.get(ceasefire_id) == snapshot:
            return None
        self.snapshots[ceasefire_id] = snapshot
        return snapshot

    async def _publish(
        self, alerts: list[Alert], snapshots: list[FragilitySnapshot], newest: datetime | None = None
    ) -> None:
        send = self.app.producer.send
        pending: list[Awaitable[Any]] = []
        for alert in alerts:
            pending.append(await send(self.topics[Role.ALERTS], alert.fingerprint.encode(), encode(alert), None, None, None))
        for snapshot in snapshots:
            key = snapshot.ceasefire_id.encode()
            pending.append(await send(self.topics[Role.FRAGILITY], key, encode(snapshot), None, None, None))
        await asyncio.gather(*pending)
        self.recent.extend(alerts)
        for alert in alerts:
            self.ctx.metrics.alerts.labels(alert.labels["alertname"], alert.labels["severity"], alert.status).inc()
        if alerts and newest is not None:
            latency = (datetime.now(UTC) - newest).total_seconds()
            self.ctx.metrics.latency.labels("alert").observe(max(0.0, latency))

    async def repeat_snapshots(self) -> None:
        """Processing-time heartbeat: the latest snapshot again, unchanged (its as_of says how old)."""
        await self._publish([], list(self.snapshots.values()))


def install(app: faust.App, ctx: Context) -> None:
    """Register the alert agent, its table and the fragility heartbeat on `app`."""
    stage = AlertStage(app, ctx)

    @app.agent(raw_topic(app, ctx.settings.topic(Role.BY_CEASEFIRE)), name="alert")
    async def alert(stream: faust.StreamT[bytes]) -> None:
        s = ctx.settings
        async for events in bounded_batches(stream, s.batch_records_max, s.batch_within_seconds, s.batch_bytes_max):
            await or_die("alert", stage.alert_batch(events))

    @app.timer(FRAGILITY_REPEAT_SECONDS)
    async def fragility_heartbeat() -> None:
        await stage.repeat_snapshots()

    ctx.stages["alert"] = stage
