"""Gauges built at scrape time from what this worker owns right now (prometheus custom collector).

Nothing is kept between scrapes: after a rebalance a worker reports only the partitions and
ceasefires it holds, so no stale series survive on the worker that gave them up.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import faust
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from schemas.fragility import FragilityComponents, FragilitySnapshot
from schemas.topics import Role
from services.runtime.context import Context
from services.runtime.fixes.consumer import committed_offsets


class StateCollector(Collector):
    def __init__(self, app: faust.App, ctx: Context) -> None:
        self.app = app
        self.ctx = ctx
        inputs = (Role.REPORTS, Role.BY_SOURCE, Role.ACCEPTED_BATCHES, Role.BY_CEASEFIRE)
        self.sources = {ctx.settings.topic(r) for r in inputs}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield self._lag()
        memory = getattr(self.app, "store_memory", None)
        if memory is not None:
            yield GaugeMetricFamily(
                "ceasefire_rocksdb_cache_bytes",
                "RocksDB cache of this worker in use (blocks, and memtables charged to it), shared by every table partition.",
                value=memory.usage_bytes(),
            )
        alert = self.ctx.stages.get("alert")
        if alert is not None:
            yield from fragility_families(list(alert.snapshots.values()))
            yield firing_family(alert.engines)
        correlate = self.ctx.stages.get("correlate")
        if correlate is not None:
            yield from incident_families(correlate.correlators)

    def _lag(self) -> GaugeMetricFamily:
        """Records behind, from the fetch high watermark (right on the embedded broker, whose
        ListOffsets answer is not) minus the committed offset."""
        family = GaugeMetricFamily(
            "ceasefire_consumer_lag_records",
            "Records not yet processed and committed, per source topic partition this worker owns.",
            labels=["topic", "partition"],
        )
        consumer = self.app.consumer
        committed = committed_offsets(consumer)
        for tp in sorted(consumer.assignment()):
            if tp.topic not in self.sources:
                continue  # changelog partitions are restored, not consumed
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            done = committed.get(tp) or 0
            family.add_metric([tp.topic, str(tp.partition)], max(0, highwater - done))
        return family


COMPONENTS = tuple(FragilityComponents.model_fields)  # the seven, in the contract's order


def fragility_families(snapshots: list[FragilitySnapshot]) -> Iterator[GaugeMetricFamily]:
    index = GaugeMetricFamily("ceasefire_fragility_index", "Fragility index, 0-100 (docs/fragility.md).", labels=["ceasefire"])
    parts = {
        name: GaugeMetricFamily(
            f"ceasefire_fragility_{name}_ratio", f"Fragility component {name}, 0-1.", labels=["ceasefire"]
        )
        for name in COMPONENTS
    }
    since = GaugeMetricFamily(
        "ceasefire_seconds_since_last_violation",
        "Event time from the last incident to the ceasefire's watermark.",
        labels=["ceasefire"],
    )
    for snapshot in snapshots:
        labels = [snapshot.ceasefire_id]
        index.add_metric(labels, snapshot.index)
        for name in COMPONENTS:
            parts[name].add_metric(labels, getattr(snapshot.components, name))
        hours = snapshot.inputs.hours_since_last_violation
        if hours is not None:
            since.add_metric(labels, hours * 3600)
    yield index
    yield from parts.values()
    yield since


def firing_family(engines: dict[str, Any]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "ceasefire_alerts_firing", "Alerts firing now, by ceasefire, rule and severity.",
        labels=["ceasefire", "alertname", "severity"],
    )
    for ceasefire_id, engine in sorted(engines.items()):
        counts = Counter((a.labels["alertname"], a.labels["severity"]) for a in engine.firing())
        for (alertname, severity), n in sorted(counts.items()):
            family.add_metric([ceasefire_id, alertname, severity], n)
    return family


def incident_families(correlators: dict[str, Any]) -> Iterator[GaugeMetricFamily]:
    open_ = GaugeMetricFamily(
        "ceasefire_incidents_open",
        "Incidents held in correlation state (not yet evicted), by ceasefire, status and severity.",
        labels=["ceasefire", "status", "severity"],
    )
    mutual = GaugeMetricFamily("ceasefire_mutual_ratio", "Share of held incidents that are mutual.", labels=["ceasefire"])
    corroborated = GaugeMetricFamily(
        "ceasefire_corroborated_ratio", "Share of held incidents corroborated by a neutral source.", labels=["ceasefire"]
    )
    for ceasefire_id, correlator in sorted(correlators.items()):
        counts = Counter((i.status, i.severity.name.lower()) for i in correlator.incidents())
        for (status, severity), n in sorted(counts.items()):
            open_.add_metric([ceasefire_id, status, severity], n)
        total = sum(counts.values())
        if total:
            mutual.add_metric([ceasefire_id], sum(n for (st, _), n in counts.items() if st == "mutual") / total)
            corroborated.add_metric(
                [ceasefire_id], sum(n for (st, _), n in counts.items() if st == "corroborated") / total
            )
    yield open_
    yield mutual
    yield corroborated
    held = GaugeMetricFamily(
        "ceasefire_held_reports",
        "Accepted reports correlate holds until the low watermark passes them, by ceasefire (docs/event-time.md).",
        labels=["ceasefire"],
    )
    for ceasefire_id, correlator in sorted(correlators.items()):
        held.add_metric([ceasefire_id], len(correlator.order))
    yield held
