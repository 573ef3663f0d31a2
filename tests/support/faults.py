"""A stream for the fault tests (replicas killed, a network partition), how it is posted, and the books
it must balance: each posted record accepted, a duplicate or dead-lettered, exactly once."""

from __future__ import annotations

import zlib

import orjson
from aiokafka import AIOKafkaProducer

from bench.workload import THEATRES, build
from schemas.ceasefire import Registry
from schemas.report import AcceptedReport
from schemas.topics import Role
from services.runtime.settings import Settings
from tests.support.batch import components
from tests.support.kafka import read_topic
from tests.support.mixed import connect_origin, group_lag
from tests.support.worker import WorkerProcess

CEASEFIRES = tuple(theatre.ceasefire_id for theatre in THEATRES)
PARTITIONS = 4
RECORDS = 20_000
STAGE_INPUTS = (Role.REPORTS, Role.BY_SOURCE, Role.ACCEPTED_BATCHES, Role.BY_CEASEFIRE)
Placed = tuple[int, bytes | None, bytes]


def stream(n: int = RECORDS, seed: int = 21) -> tuple[list[Placed], int]:
    """The benchmark's mix (bench/workload.py: engagements of 3-8 reports from both parties and observers,
    two ceasefires, ~10 % repeats, ~3 % garbage) at the density of 1,000,000 reports in 30 days, each record
    on the partition its key gives (unkeyed garbage round the partitions). Returns it and the valid count."""
    workload = build(n, days=n / 33_000, seed=seed)
    placed = [((zlib.crc32(key) if key is not None else i) % PARTITIONS, key, value)
              for i, (key, value) in enumerate(workload.records)]
    return placed, workload.valid


def incidents_by_definition(accepted: list[AcceptedReport], registry: Registry) -> set[frozenset[tuple[str, str]]]:
    """The batch link rule's incidents (tests/support/batch.py), ceasefire by ceasefire."""
    out: set[frozenset[tuple[str, str]]] = set()
    for ceasefire_id in {r.ceasefire_id for r in accepted}:
        ceasefire = registry.get(ceasefire_id)
        assert ceasefire is not None, ceasefire_id
        out |= components([r for r in accepted if r.ceasefire_id == ceasefire_id], ceasefire)
    return out


async def standing(settings: Settings, workers: list[WorkerProcess]) -> str:
    """What `finished` looks at, per worker, for a failure message."""
    rows = []
    for w in workers:
        idle = {c: w.sum_metric("ceasefire_idle_partitions", ceasefire=c) for c in CEASEFIRES}
        rows.append(f"{w.log_path.name}: alive={w.alive} idle={idle} held={w.sum_metric('ceasefire_held_reports')}")
    lag = {k: v for k, v in (await group_lag(settings, STAGE_INPUTS)).items() if v}
    return "; ".join(rows) + f"; group lag {lag}"


def total(workers: list[WorkerProcess], name: str, **labels: str) -> float:
    """A metric summed over the workers alive now (a killed worker's counts are gone with it)."""
    return sum(w.sum_metric(name, **labels) for w in workers if w.alive)


async def finished(settings: Settings, workers: list[WorkerProcess]) -> bool:
    """Every stage's input committed to its end, every ingest partition idle about every ceasefire,
    nothing held back (the workers that are alive now)."""
    return (
        all(total(workers, "ceasefire_idle_partitions", ceasefire=c) >= PARTITIONS for c in CEASEFIRES)
        and total(workers, "ceasefire_held_reports") == 0
        and not any((await group_lag(settings, STAGE_INPUTS)).values())
    )


async def post(settings: Settings, records: list[Placed]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    try:
        for partition, key, value in records:
            await producer.send(settings.topic(Role.REPORTS), value, key=key, partition=partition)
        await producer.flush()
    finally:
        await producer.stop()


async def books_balance(settings: Settings, sent: int) -> None:
    """Each input record in exactly one place (re-emits after a crash go to the same place)."""
    bootstrap = settings.bootstrap
    inputs = {(r.partition, r.offset) for r in await read_topic(bootstrap, settings.topic(Role.REPORTS), sent)}
    accepted = {tuple(map(int, r.headers["ceasefire.origin"].decode().split(":")))
                for r in await read_topic(bootstrap, settings.topic(Role.ACCEPTED))}
    duplicates = {(d["origin"]["partition"], d["origin"]["offset"])
                  for d in (orjson.loads(r.value or b"{}") for r in await read_topic(bootstrap, settings.topic(Role.DUPLICATES)))}
    dead = {connect_origin(r) for r in await read_topic(bootstrap, settings.topic(Role.DEAD_LETTERS))}
    assert len(inputs) == sent
    assert accepted | duplicates | dead == inputs, "input records with no outcome"
    assert not (accepted & duplicates or accepted & dead or duplicates & dead), "input records with two outcomes"
