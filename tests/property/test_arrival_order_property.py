"""At the pure level: per-partition streams of the demo's reports, interleaved and chunked at random,
with the marks ingest sends after each chunk, give the same incidents, alert episodes and fragility
grid (docs/event-time.md). The stages' loop in miniature: progress and `ordered_at` per partition
(services/watermark.py), the correlator holding reports until the low watermark passes them, the alert
engine on a 15-minute grid."""

from __future__ import annotations

import random
import zlib
from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.alert import Alert
from schemas.ceasefire import Registry, load_registry
from schemas.ingest import Mark
from schemas.report import AcceptedReport
from services.alert.rules import AlertEngine
from services.console.demo import CEASEFIRE_ID, REPLAY_NOW, SCENARIO_PATH
from services.correlate.state import Correlator
from services.ingest.dedup import DedupState
from services.ingest.validate import Rules, validate
from services.runtime.settings import Settings
from services.store import MemoryStore
from services.watermark import PartitionProgress

PARTITIONS = 3
GRID = timedelta(minutes=15)
REGISTRY: Registry = load_registry(Settings().registry_path)


def partition_streams() -> list[list[AcceptedReport]]:
    """The demo's accepted reports, each on the partition its source keys it to, in file order."""
    rules, dedup = Rules(REGISTRY), DedupState(MemoryStore(), retention_seconds=14 * 24 * 3600)
    streams: list[list[AcceptedReport]] = [[] for _ in range(PARTITIONS)]
    for line in SCENARIO_PATH.read_bytes().splitlines():
        verdict = validate(line, rules, REPLAY_NOW)
        if isinstance(verdict, list):
            continue
        decision = dedup.decide(verdict)
        dedup.commit()
        if decision.rule is None:
            streams[zlib.crc32(verdict.source.encode()) % PARTITIONS].append(verdict)
    return streams


STREAMS = partition_streams()


def replay(seed: int) -> tuple[set[frozenset[tuple[str, str]]], dict[tuple[str, datetime], tuple[datetime | None, str]], list[tuple[datetime, float]]]:
    rng = random.Random(seed)
    ceasefire = REGISTRY.get(CEASEFIRE_ID)
    assert ceasefire is not None
    correlator, engine = Correlator(ceasefire, upstreams=PARTITIONS), AlertEngine(ceasefire, grid=GRID)
    progress = PartitionProgress([CEASEFIRE_ID], idle_seconds=10)
    cursor = [0] * PARTITIONS
    newest: dict[str, tuple[int, frozenset[tuple[str, str]], str]] = {}
    alerts: list[Alert] = []

    def take(reports: list[AcceptedReport], marks: dict[int, Mark]) -> None:
        for report in reports:
            correlator.order.hold(report)
        for partition, mark in marks.items():
            correlator.order.mark(str(partition), mark)
        for report in correlator.order.release():
            for incident in correlator.released(report):
                newest[incident.incident_id] = (incident.version, frozenset((r.source, r.report_id) for r in incident.reports), incident.status)
                alerts.extend(engine.observe(incident))
        low = correlator.order.low
        if low is not None and low.at is not None:
            correlator.advance(low.at)
            alerts.extend(engine.advance(low.at))
        correlator.take_changes()  # a batch boundary: the reports still held are stored as JSON

    while any(cursor[p] < len(STREAMS[p]) for p in range(PARTITIONS)):
        p = rng.choice([p for p in range(PARTITIONS) if cursor[p] < len(STREAMS[p])])
        chunk = STREAMS[p][cursor[p] : cursor[p] + rng.randint(1, 40)]
        cursor[p] += len(chunk)
        ordered = [r.model_copy(update={"ordered_at": progress.order(p, CEASEFIRE_ID, r.observed_at, 0.0)}) for r in chunk]
        take(ordered, {p: progress.marks(p, caught_up=False, now=0.0)[CEASEFIRE_ID]})
    take([], {p: progress.marks(p, caught_up=True, now=60.0)[CEASEFIRE_ID] for p in range(PARTITIONS)})

    incidents = {members for _, members, status in newest.values() if status != "merged"}
    episodes = {(a.fingerprint, a.starts_at): (a.ends_at, a.labels["severity"]) for a in alerts}
    series = [(s.as_of, s.index) for s in engine.series]
    return incidents, episodes, series


REFERENCE = replay(0)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=1, max_value=2**32))
def test_any_interleaving_gives_the_same_incidents_episodes_and_grid(seed: int) -> None:
    incidents, episodes, series = replay(seed)
    assert incidents == REFERENCE[0]
    assert episodes == REFERENCE[1]
    assert series == REFERENCE[2]


def test_the_reference_is_worth_comparing() -> None:
    incidents, episodes, series = REFERENCE
    assert len(incidents) > 100 and len(episodes) > 100 and len(series) > 4 * 96
