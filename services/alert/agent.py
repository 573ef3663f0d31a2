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
import orjson
from pydantic import ValidationError

from schemas.alert import Alert
from schemas.fragility import FragilitySnapshot
from schemas.incident import IncidentVersionBatch
from schemas.topics import Role
from services.alert.rules import AlertEngine
from services.runtime.batching import bounded_batches
from services.runtime.ceasefire_state import CeasefireStates
from services.runtime.codec import encode, raw_topic, try_decode
from services.runtime.context import Context
from services.runtime.failure import FAULT, UNDECODABLE, or_die, quarantine
from services.runtime.tables import changelog_sent

FRAGILITY_REPEAT_SECONDS = 60.0


class _Poisoned(Exception):
    """An engine raised on item `(batch number, item number)` of the batch."""

    def __init__(self, item: tuple[int, int], ceasefire_id: str, body: Any, error: Exception) -> None:
        self.item, self.ceasefire_id, self.body, self.error = item, ceasefire_id, body, error


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
        pending: list[Awaitable[Any]] = []
        decoded: list[tuple[faust.EventT, IncidentVersionBatch]] = []
        for event in events:
            batch = try_decode(IncidentVersionBatch, event.message.value)
            if isinstance(batch, ValidationError):
                pending.append(await quarantine(self.app, self.ctx, "alert", event.message, UNDECODABLE, batch))
            else:
                decoded.append((event, batch))
        alerts, touched = await self._fold(decoded, pending)
        newest = max((b.newest_ingested_at for _, b in decoded if b.newest_ingested_at is not None), default=None)
        snapshots = [s for c in sorted(touched) if (s := self._changed_snapshot(c)) is not None]
        await self._publish(alerts, snapshots, newest, pending)
        for ceasefire_id in touched:
            self.states.store(ceasefire_id, self.engines[ceasefire_id].take_changes())
        await changelog_sent(self.app)

    async def _fold(
        self, decoded: list[tuple[faust.EventT, IncidentVersionBatch]], pending: list[Awaitable[Any]]
    ) -> tuple[list[Alert], set[str]]:
        """Apply every incident version and watermark in order. One an engine raises on is that item's
        fault: the engines the batch touched are dropped (their table entries are still the batch's
        starting state), the item dead-lettered, and the batch applied again without it."""
        poisoned: set[tuple[int, int]] = set()
        while True:
            await self.states.built(
                (ceasefire_id, event.message.partition)
                for event, batch in decoded
                for ceasefire_id in (*batch.watermarks, *(incident.ceasefire_id for incident in batch.incidents))
            )
            alerts: list[Alert] = []
            touched: set[str] = set()
            try:
                for n, (event, batch) in enumerate(decoded):
                    self._observe(n, batch, event.message.partition, alerts, touched, poisoned)
            except _Poisoned as poison:
                poisoned.add(poison.item)
                for ceasefire_id in {*touched, poison.ceasefire_id}:
                    self.states.discard(ceasefire_id)
                message = decoded[poison.item[0]][0].message
                body = orjson.dumps(poison.body)
                pending.append(await quarantine(self.app, self.ctx, "alert", message, FAULT, poison.error, body))
                continue
            self._count_new(decoded, poisoned)
            return alerts, touched

    def _observe(
        self,
        n: int,
        batch: IncidentVersionBatch,
        partition: int,
        alerts: list[Alert],
        touched: set[str],
        poisoned: set[tuple[int, int]],
    ) -> None:
        for i, incident in enumerate(batch.incidents):
            engine = self.engine(incident.ceasefire_id, partition)
            if engine is not None and (n, i) not in poisoned:
                try:
                    alerts.extend(engine.observe(incident))
                except Exception as error:  # noqa: BLE001 - one version's fault, not the stage's
                    body = incident.model_dump(mode="json")
                    raise _Poisoned((n, i), incident.ceasefire_id, body, error) from error
                touched.add(incident.ceasefire_id)
        for j, (ceasefire_id, watermark) in enumerate(batch.watermarks.items(), start=len(batch.incidents)):
            engine = self.engine(ceasefire_id, partition)
            if engine is not None and (n, j) not in poisoned:
                try:
                    alerts.extend(engine.advance(watermark))
                except Exception as error:  # noqa: BLE001
                    body = {"ceasefire_id": ceasefire_id, "watermark": str(watermark)}
                    raise _Poisoned((n, j), ceasefire_id, body, error) from error
                touched.add(ceasefire_id)

    def _count_new(self, decoded: list[tuple[faust.EventT, IncidentVersionBatch]], poisoned: set[tuple[int, int]]) -> None:
        for n, (_, batch) in enumerate(decoded):
            for i, incident in enumerate(batch.incidents):
                if incident.version == 1 and (n, i) not in poisoned and incident.ceasefire_id in self.engines:
                    sector = incident.sectors[0] if incident.sectors else "unknown"
                    self.ctx.metrics.incidents.labels(incident.ceasefire_id, sector, incident.severity.name.lower()).inc()

    def _changed_snapshot(self, ceasefire_id: str) -> FragilitySnapshot | None:
        snapshot = self.engines[ceasefire_id].fragility()
        if self.snapshots.get(ceasefire_id) == snapshot:
            return None
        self.snapshots[ceasefire_id] = snapshot
        return snapshot

    async def _publish(
        self,
        alerts: list[Alert],
        snapshots: list[FragilitySnapshot],
        newest: datetime | None = None,
        pending: list[Awaitable[Any]] | None = None,
    ) -> None:
        send = self.app.producer.send
        pending = [] if pending is None else pending
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
