"""Two replicas of each service (ingest, correlate, alert: separate processes in one group, as the
production stack runs them; the archive: two in its own group, on one PostgreSQL), one replica of each
SIGKILLed in the middle of a 20,000-record stream: afterwards the books balance on the topics and in the
archive (each input record accepted, a duplicate or dead-lettered, once), every accepted report is in
exactly one live incident, the incidents equal the batch definition, the alert episodes
and the fragility series equal those of an undisturbed run, and no per-partition gauge is left on a
worker that does not own the partition (issue 21)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from schemas.ceasefire import Registry
from schemas.incident import Incident
from schemas.topics import Role
from services.archive import store, tables
from services.runtime.admin import ensure_topics
from services.runtime.broker import free_port
from services.runtime.settings import Settings
from tests.support.faults import (
    CEASEFIRES,
    PARTITIONS,
    STAGE_INPUTS,
    books_balance,
    finished,
    incidents_by_definition,
    post,
    stream,
    total,
)
from tests.support.kafka import eventually, read_topic
from tests.support.outcomes import outputs
from tests.support.postgres import postgres_server
from tests.support.worker import WorkerProcess, isolated_settings

STAGES = ("ingest", "correlate", "alert", "archive")
pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(600)]  # ~95 s alone on 2 cores; a loaded CI machine takes longer


class Run:
    def __init__(self, broker, tmp_path: Path, name: str) -> None:  # noqa: ANN001
        self.settings = isolated_settings(broker.url, tmp_path / name, partitions=PARTITIONS, batch_max=200, batch_records_max=8)
        self.tmp_path, self.name = tmp_path, name
        self.workers: list[WorkerProcess] = []

    async def start(self, stages: tuple[str, ...], tag: str) -> WorkerProcess:
        own = self.settings.model_copy(update={"data_dir": self.tmp_path / f"{self.name}-{tag}", "web_port": free_port()})
        worker = WorkerProcess(own, stages, self.tmp_path / f"{self.name}-{tag}.log").start()
        self.workers.append(worker)
        await worker.wait_serving(timeout=60)
        return worker

    async def finished(self) -> bool:
        return await finished(self.settings, self.workers)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


async def test_one_replica_of_each_stage_killed_mid_stream_loses_nothing(broker, registry: Registry, tmp_path: Path) -> None:
    with postgres_server() as archive_url:  # the archive's replicas share one database, as in production
        await one_replica_of_each_killed(broker, registry, tmp_path, archive_url)


async def one_replica_of_each_killed(broker, registry: Registry, tmp_path: Path, archive_url: str) -> None:  # noqa: ANN001
    records, valid = stream()
    reference = Run(broker, tmp_path, "reference")
    faulty = Run(broker, tmp_path, "replicas")
    faulty.settings = faulty.settings.model_copy(update={"archive_url": SecretStr(archive_url)})
    try:
        await ensure_topics(reference.settings)
        await reference.start(("ingest", "correlate", "alert"), "all")
        await post(reference.settings, records)
        await eventually(reference.finished, timeout=300, what="the undisturbed run finished")
        expected, _ = await outputs(reference.settings)
        reference.stop()

        await ensure_topics(faulty.settings)
        for stage in STAGES:
            for replica in (1, 2):
                await faulty.start((stage,), f"{stage}-{replica}")
        await post(faulty.settings, records)

        async def partway() -> bool:
            return total(faulty.workers, "ceasefire_reports_total", outcome="accepted") >= valid // 3

        await eventually(partway, timeout=180, what="a third of the reports accepted")
        for stage in STAGES:
            faulty.workers[[w.services for w in faulty.workers].index((stage,))].kill()  # the first replica of each
        await eventually(faulty.finished, timeout=400, what="the survivors finished the stream")

        async def archived() -> bool:  # every posted record in the archive's books, each once (keyed rows)
            return sum(archive_counts(archive_url).values()) >= len(records)

        await eventually(archived, timeout=180, interval=1.0, what="the surviving archive replica caught up")
        assert sum(archive_counts(archive_url).values()) == len(records)

        await books_balance(faulty.settings, len(records))
        got, accepted = await outputs(faulty.settings)
        members = Counter(m for incident in await live_incidents(faulty.settings) for m in incident)
        assert [m for m, count in members.items() if count > 1] == [], "reports in two live incidents"
        assert set(members) == {(r.source, r.report_id) for r in accepted}, "accepted reports in no incident"
        # once each: the accepted topic may hold a killed ingest replica's re-emits, the archive's rows are keyed
        assert archive_counts(archive_url)["report_revisions"] == len({(r.source, r.report_id, r.revision) for r in accepted})
        assert got.incidents == incidents_by_definition(accepted, registry)
        assert got.incidents == expected.incidents
        assert expected.episodes, "the undisturbed run raised no alert: nothing to compare"
        assert_no_stale_gauges(faulty)
        assert got.episodes == expected.episodes  # docs/faults.md "Replicas killed": a replay's history and watermark
        assert got.series == expected.series
    finally:
        reference.stop()
        faulty.stop()


def archive_counts(url: str) -> dict[str, int]:
    """Rows of the archive's three books: accepted reports (revisions), duplicates, dead letters."""
    engine = store.open_engine(url)
    try:
        with engine.connect() as conn:
            return {table.name: int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)
                    for table in (tables.report_revisions, tables.duplicates, tables.dead_letters)}
    finally:
        engine.dispose()


async def live_incidents(settings: Settings) -> list[list[tuple[str, str]]]:
    newest: dict[str, Incident] = {}
    for record in await read_topic(settings.bootstrap, settings.topic(Role.INCIDENTS)):
        incident = Incident.model_validate_json(record.value or b"")
        if incident.incident_id not in newest or incident.version > newest[incident.incident_id].version:
            newest[incident.incident_id] = incident
    return [[(r.source, r.report_id) for r in i.reports] for i in newest.values() if i.status != "merged"]


def assert_no_stale_gauges(run: Run) -> None:
    """Each input partition's lag on exactly one live worker, each ceasefire's fragility on one."""
    lag: Counter[tuple[str, str]] = Counter()
    fragility: Counter[str] = Counter()
    for worker in [w for w in run.workers if w.alive]:
        for (name, labels), _ in worker.scrape().items():
            found = dict(labels)
            if name == "ceasefire_consumer_lag_records":
                lag[found["topic"], found["partition"]] += 1
            elif name == "ceasefire_fragility_index":
                fragility[found["ceasefire"]] += 1
    expected = {(run.settings.topic(role), str(p)) for role in STAGE_INPUTS for p in range(PARTITIONS)}
    assert set(lag) == expected and set(lag.values()) == {1}, f"lag gauges: {sorted(lag.items())}"
    assert fragility == dict.fromkeys(CEASEFIRES, 1), f"fragility series: {fragility}"
