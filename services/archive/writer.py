"""The archive service's loop: read the archived topics as a consumer group, write each batch in one
transaction, then commit the offsets (docs/archive.md).

A crash between the write and the commit replays the batch: the writes are upserts guarded by each
record's own order, so the rows come out the same. A database that refuses a batch is retried with
backoff, the same batch, for as long as it takes: the offsets do not move past unwritten records.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from schemas.topics import Role
from services.archive import store
from services.archive.rows import ARCHIVED, Record, Rows, Spelling, fold
from services.runtime.app import archive_group
from services.runtime.kafka_security import client_options
from services.runtime.metrics import Metrics
from services.runtime.settings import Settings

log = logging.getLogger("ceasefire.archive")
RETRY_FIRST_SECONDS = 0.5
RETRY_MOST_SECONDS = 30.0


def prepare(settings: Settings, cluster_id: str) -> Engine:
    """Open the archive for `cluster_id`: an embedded SQLite archive of another cluster is set aside,
    migrations run, and a configured database that records another cluster is refused."""
    url = settings.archive_address
    if settings.archive_url is None:
        aside = store.set_aside(url, cluster_id)
        if aside is not None:
            log.warning("the archive recorded another Kafka cluster: moved aside to %s", aside)
    engine = store.open_engine(url)
    store.migrate(engine)
    store.bind_cluster(engine, cluster_id)
    return engine


class ArchiveWriter:
    def __init__(self, settings: Settings, metrics: Metrics, engine: Engine, spell: Spelling = str) -> None:
        self.settings = settings
        self.spell = spell
        self.metrics = metrics
        self.engine = engine
        self.roles = {settings.topic(role): role for role in ARCHIVED}
        self.written = 0  # records written since start (tests and the live view await it)

    def consumer(self) -> AIOKafkaConsumer:
        s = self.settings
        return AIOKafkaConsumer(
            *self.roles,
            bootstrap_servers=s.bootstrap,
            group_id=archive_group(s.app_id),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(s.session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(s.heartbeat_seconds * 1000),
            fetch_max_wait_ms=s.fetch_max_wait_ms,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            **client_options(s),
        )

    async def run(self) -> None:
        consumer = self.consumer()
        await consumer.start()
        try:
            while True:
                try:
                    batch = await consumer.getmany(timeout_ms=500, max_records=self.settings.archive_batch_max)
                except KafkaError as exc:  # the broker watch decides about a lost broker
                    log.warning("archive: %r", exc)
                    await asyncio.sleep(1)
                    continue
                if batch:
                    records = list(self._records(batch.items()))
                    await self._write(fold(records, self.spell))
                    self._count(records)
                    await consumer.commit()
                await self._measure_lag(consumer)
        finally:
            await consumer.stop()

    def _records(self, batch: Iterable[tuple[TopicPartition, list[ConsumerRecord[bytes, bytes]]]]) -> Iterable[Record]:
        for tp, messages in batch:
            role = self.roles[tp.topic]
            for m in messages:
                yield Record(role, m.partition, m.offset, m.timestamp, m.key, m.value, tuple(m.headers or ()))

    async def _write(self, rows: Rows) -> None:
        delay = RETRY_FIRST_SECONDS
        while True:
            started = time.perf_counter()
            try:
                await asyncio.to_thread(store.write, self.engine, rows)
            except SQLAlchemyError as exc:  # the database is away or refused: the same batch again
                self.metrics.archive_failures.inc()
                log.warning("archive write failed (%s); retrying in %.1f s", type(exc).__name__, delay)
                await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not a secret
                delay = min(delay * 2, RETRY_MOST_SECONDS)
                continue
            self.metrics.archive_write.observe(time.perf_counter() - started)
            return

    def _count(self, records: list[Record]) -> None:
        for record in records:
            self.metrics.archived.labels(str(record.role), "written").inc()
        self.written += len(records)

    async def _measure_lag(self, consumer: AIOKafkaConsumer) -> None:
        lag: dict[Role, int] = dict.fromkeys(ARCHIVED, 0)
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            if end is None:
                continue
            lag[self.roles[tp.topic]] += max(0, end - await consumer.position(tp))
        for role, behind in lag.items():
            self.metrics.archive_lag.labels(str(role)).set(behind)
