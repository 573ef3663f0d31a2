"""The same reports give the same incidents, alert episodes and fragility series however they arrive
(docs/event-time.md), on the real embedded broker: the demo's four days (both parties, UNMOGIP, re-sends,
resubmissions, garbage, a report hours late, event times a year behind processing time) posted in one
burst, live-paced, with one partition's records seconds ahead of the rest, as a backlog read by two
workers with small batches, and with the worker killed midway. Incidents must equal the batch link rule."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from schemas.ceasefire import Registry
from schemas.report import AcceptedReport
from schemas.topics import Role
from services.console.demo import EXPECTED
from services.console.post import report_key
from services.runtime.admin import ensure_topics
from services.runtime.broker import free_port
from services.runtime.settings import Settings
from tests.support.batch import components
from tests.support.kafka import eventually
from tests.support.outcomes import Outputs, outputs
from tests.support.worker import WorkerProcess, isolated_settings

pytestmark = pytest.mark.asyncio
SCENARIO = Path(__file__).resolve().parents[2] / "deploy" / "demo" / "scenario.jsonl"
CEASEFIRE = "in-pk-2025-05-10"
PARTITIONS = 4
Key = tuple[str, str]


def placed() -> list[tuple[int, bytes | None, bytes]]:
    """Each line on the ingest partition its key gives (as a keyed producer would), garbage spread."""
    records = []
    for n, line in enumerate(SCENARIO.read_bytes().splitlines()):
        key = report_key(line)
        partition = (zlib.crc32(key) if key is not None else n) % PARTITIONS
        records.append((partition, key, line))
    return records


async def post(settings: Settings, records: list[tuple[int, bytes | None, bytes]], pace: float = 0.0) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=5)
    await producer.start()
    try:
        for partition, key, value in records:
            await producer.send(settings.topic(Role.REPORTS), value, key=key, partition=partition)
            if pace:
                await asyncio.sleep(pace)
        await producer.flush()
    finally:
        await producer.stop()


def finished(workers: list[WorkerProcess], accepted: int, seen: dict[str, Any]) -> Callable[[], Awaitable[bool]]:
    """Every report accepted, every ingest partition idle (nothing more is coming), nothing held, no lag.
    `seen` keeps the last figures and where any lag or hold was, for the failure's message."""

    async def condition() -> bool:
        def total(name: str, **labels: str) -> float:
            return sum(w.sum_metric(name, **labels) for w in workers)

        seen.update(
            accepted=total("ceasefire_reports_total", outcome="accepted"),
            idle=total("ceasefire_idle_partitions", ceasefire=CEASEFIRE),
            held=total("ceasefire_held_reports"),
            lag=total("ceasefire_consumer_lag_records"),
        )
        done = seen["accepted"] >= accepted and seen["idle"] >= PARTITIONS and seen["held"] == seen["lag"] == 0
        if not done:
            seen["where"] = [
                (w.log_path.stem, n, dict(labels), v) for w in workers if w.alive for (n, labels), v in w.scrape().items()
                if v and n in ("ceasefire_consumer_lag_records", "ceasefire_held_reports")
            ]
        return done

    return condition


Launch = Callable[[str], Awaitable[WorkerProcess]]  # a worker of the run's settings, serving
Feed = Callable[[Settings, Launch], Awaitable[list[WorkerProcess]]]  # posts, starts workers, returns the live ones


async def run(
    broker, tmp_path: Path, name: str, feed: Feed, accepted: int = EXPECTED.accepted, **overrides: object
) -> tuple[Outputs, list[AcceptedReport]]:
    """`accepted`: what the live workers' metrics will count (a killed worker's counts are gone)."""
    settings = isolated_settings(broker.url, tmp_path / name, partitions=PARTITIONS, **overrides)
    await ensure_topics(settings)  # a backlog may be posted before any worker starts
    started: list[WorkerProcess] = []

    async def launch(tag: str) -> WorkerProcess:
        own = settings if not started else settings.model_copy(update={"data_dir": tmp_path / f"{name}-{tag}", "web_port": free_port()})
        if started and tag == "again":
            own = started[0].settings
        worker = WorkerProcess(own, ("ingest", "correlate", "alert"), tmp_path / f"{name}-{tag}.log").start()
        started.append(worker)
        await worker.wait_serving()
        return worker

    try:
        live, seen = await feed(settings, launch), dict[str, Any]()
        try:  # ~30-60 s alone; a loaded machine takes longer
            await eventually(finished(live, accepted, seen), timeout=240, what=f"{name}: finished")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; last seen {seen}; logs in {tmp_path}") from None
        return await outputs(settings)
    finally:
        for worker in started:
            worker.stop()


async def burst(settings: Settings, launch: Launch) -> list[WorkerProcess]:
    """The reference: every record posted at once to a running worker."""
    worker = await launch("one")
    await post(settings, placed())
    return [worker]


@pytest.fixture(scope="module")
async def reference(broker, tmp_path_factory: pytest.TempPathFactory) -> tuple[Outputs, list[AcceptedReport]]:  # noqa: ANN001
    """The burst run, which every other arrival is compared with: run once for the module."""
    return await run(broker, tmp_path_factory.mktemp("reference"), "burst", burst)


async def test_every_arrival_gives_the_same_incidents_alerts_and_fragility(
    broker, registry: Registry, tmp_path: Path, reference: tuple[Outputs, list[AcceptedReport]]
) -> None:
    records = placed()

    async def paced(settings: Settings, launch: Launch) -> list[WorkerProcess]:
        worker = await launch("one")
        await post(settings, records, pace=0.01)
        return [worker]

    async def skewed(settings: Settings, launch: Launch) -> list[WorkerProcess]:
        worker = await launch("one")
        await post(settings, [r for r in records if r[0] == 0])
        await asyncio.sleep(3)  # less than the idle rule: partition 0 is read well ahead of the others
        await post(settings, [r for r in records if r[0] != 0])
        return [worker]

    runs = {
        "burst": reference,
        "paced": await run(broker, tmp_path, "paced", paced),
        "skewed": await run(broker, tmp_path, "skewed", skewed, batch_max=7, batch_records_max=2),
    }
    burst_outputs, accepted = reference
    ceasefire = registry.get(CEASEFIRE)
    assert ceasefire is not None
    assert burst_outputs.incidents == components(accepted, ceasefire)
    assert len(burst_outputs.series) > 4 * 96  # four days and more at 15 minutes
    for name, (got, _) in runs.items():
        assert got.incidents == burst_outputs.incidents, name
        assert got.episodes == burst_outputs.episodes, name
        assert got.series == burst_outputs.series, name


async def test_a_backlog_two_workers_and_a_restart_give_what_one_burst_gives(
    broker, tmp_path: Path, reference: tuple[Outputs, list[AcceptedReport]]
) -> None:
    records = placed()

    async def backlog_two_workers(settings: Settings, launch: Launch) -> list[WorkerProcess]:
        await post(settings, records)  # while no worker runs: an outage's backlog
        return [await launch("one"), await launch("two")]

    async def restarted(settings: Settings, launch: Launch) -> list[WorkerProcess]:
        worker = await launch("one")
        await post(settings, records)

        async def partway() -> bool:
            return worker.sum_metric("ceasefire_reports_total", outcome="accepted") >= EXPECTED.accepted // 4

        await eventually(partway, timeout=60, what="some reports accepted")
        worker.kill()  # in the middle of the backlog: no partition is caught up, so none goes idle
        return [await launch("again")]

    burst_outputs = reference[0]
    for name, feed, counted in (("backlog-two-workers", backlog_two_workers, EXPECTED.accepted), ("restarted", restarted, 0)):
        got, _ = await run(broker, tmp_path, name, feed, counted, batch_max=50, batch_records_max=4)
        assert got.incidents == burst_outputs.incidents, name
        assert got.episodes == burst_outputs.episodes, name
        assert got.series == burst_outputs.series, name
