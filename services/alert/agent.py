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

from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import faust
import orjson

from schemas.alert import Alert
from schemas.fragility import FragilitySnapshot
from schemas.incident import IncidentVersion, IncidentVersionBatch
from schemas.topics import Role
from services.alert.rules import AlertEngine
from services.runtime.ceasefire_state import CeasefireStates
from services.runtime.context import Context
from services.runtime.failure import or_die
from services.runtime.stage import Item, Outbox, apply_isolated, decode_batch, not_ahead, serve
from services.runtime.state import changelog_sent

FRAGILITY_REPEAT_SECONDS = 60.0


class AlertStage:
    def __init__(self, app: faust.App, ctx: Context) -> None:
        self.app, self.ctx = app, ctx
        self.states: CeasefireStates[AlertEngine] = CeasefireStates.of_stage(
            app, ctx, "alerting", Role.BY_CEASEFIRE,
            lambda ceasefire, store: AlertEngine(ceasefire, store=store, grid=ctx.settings.fragility_step),
        )
        self.engines = self.states.states  # ceasefire id → engine, for the collector and live view
        self.snapshots: dict[str, FragilitySnapshot] = {}
        self.recent: deque[Alert] = deque(maxlen=12)  # the newest alert records, for the live view
        self.now = datetime.now(UTC)  # processing time of the batch in hand

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
        """The IncidentBatch records taken at once, in order: one round of sends and writes for all.
        Order (services/runtime/stage.py): apply; send and await; store the engines' changes (the
        journal first) and await the changelog."""
        outbox = Outbox(self.app, self.ctx, "alert")
        self.now = datetime.now(UTC)  # bounds the times read (stage.not_ahead), never decides anything
        decoded = await decode_batch(events, Role.BY_CEASEFIRE, outbox)
        applied = await apply_isolated(self._items(decoded), self._apply, self.states, outbox)
        alerts = [alert for _, raised in applied if raised is not None for alert in raised]
        touched = {item.ceasefire_id for item, raised in applied if raised is not None}
        self._count_new(item for item, raised in applied if raised is not None)
        newest = max((b.newest_ingested_at for _, b in decoded if b.newest_ingested_at is not None), default=None)
        snapshots = [s for c in sorted(touched) for s in self._series(c)]
        snapshots += [s for c in sorted(touched) if (s := self._changed_snapshot(c)) is not None]
        await self._publish(alerts, snapshots, newest, outbox)
        for ceasefire_id in touched:
            self.states.store(ceasefire_id, self.engines[ceasefire_id].take_changes())
        await changelog_sent(self.app)

    @staticmethod
    def _items(decoded: list[tuple[Any, IncidentVersionBatch]]) -> list[Item[IncidentVersion | datetime]]:
        """Each record's incident versions, then its watermarks: the order the engines apply them."""
        items: list[Item[IncidentVersion | datetime]] = []
        for message, batch in decoded:
            for incident in batch.incidents:
                items.append(Item(message, incident.ceasefire_id, incident, partial(_version_body, incident)))
            for ceasefire_id, watermark in batch.watermarks.items():
                items.append(Item(message, ceasefire_id, watermark, partial(_watermark_body, ceasefire_id, watermark)))
        return items

    def _apply(self, item: Item[IncidentVersion | datetime]) -> list[Alert] | None:
        """An incident version observed, or a watermark advanced: the alert records it raised (None
        for a ceasefire gone from the registry)."""
        engine = self.engine(item.ceasefire_id, item.message.partition)
        if engine is None:
            return None
        limit = self.ctx.settings.max_future
        if isinstance(item.value, datetime):
            return engine.advance(not_ahead(item.value, self.now, limit, "watermark"))
        not_ahead(item.value.last_observed_at, self.now, limit, "last_observed_at")
        return engine.observe(item.value)

    def _count_new(self, items: Iterable[Item[IncidentVersion | datetime]]) -> None:
        for item in items:
            incident = item.value
            if not isinstance(incident, datetime) and incident.version == 1:
                sector = incident.sectors[0] if incident.sectors else "unknown"
                self.ctx.metrics.incidents.labels(incident.ceasefire_id, sector, incident.severity.name.lower()).inc()

    def _series(self, ceasefire_id: str) -> list[FragilitySnapshot]:
        """The grid points of the fragility series event time passed in this batch."""
        engine = self.engines[ceasefire_id]
        series, engine.series = engine.series, []
        return series

    def _changed_snapshot(self, ceasefire_id: str) -> FragilitySnapshot | None:
        snapshot = self.engines[ceasefire_id].fragility()
        if self.snapshots.get(ceasefire_id) == snapshot:
            return None
        self.snapshots[ceasefire_id] = snapshot
        return snapshot

    async def _publish(
        self, alerts: list[Alert], snapshots: list[FragilitySnapshot], newest: datetime | None, outbox: Outbox
    ) -> None:
        for alert in alerts:
            await outbox.publish(Role.ALERTS, alert)
        for snapshot in snapshots:
            await outbox.publish(Role.FRAGILITY, snapshot)
        await outbox.flush()
        self.recent.extend(alerts)
        for alert in alerts:
            self.ctx.metrics.alerts.labels(alert.labels["alertname"], alert.labels["severity"], alert.status).inc()
        if alerts and newest is not None:
            latency = (datetime.now(UTC) - newest).total_seconds()
            self.ctx.metrics.latency.labels("alert").observe(max(0.0, latency))

    async def repeat_snapshots(self) -> None:
        """Processing-time heartbeat: the latest snapshot again, unchanged (its as_of says how old)."""
        repeats = [s.model_copy(update={"kind": "repeat"}) for s in self.snapshots.values()]
        await self._publish([], repeats, None, Outbox(self.app, self.ctx, "alert"))


def install(app: faust.App, ctx: Context) -> None:
    """Register the alert agent, its table and the fragility heartbeat on `app`."""
    stage = AlertStage(app, ctx)
    serve(app, ctx, "alert", Role.BY_CEASEFIRE, stage.alert_batch)

    @app.timer(FRAGILITY_REPEAT_SECONDS)
    async def fragility_heartbeat() -> None:
        await or_die("alert-heartbeat", stage.repeat_snapshots())  # fenced: skipped; a fault ends the worker

    ctx.stages["alert"] = stage


def _version_body(incident: IncidentVersion) -> bytes:
    return incident.__pydantic_serializer__.to_json(incident)


def _watermark_body(ceasefire_id: str, watermark: datetime) -> bytes:
    return orjson.dumps({"ceasefire_id": ceasefire_id, "watermark": watermark.isoformat()})
