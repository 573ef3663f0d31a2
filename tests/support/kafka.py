"""Test-side Kafka helpers: produce records, read a topic to its end (by the fetch high watermark,
since the embedded broker's ListOffsets answer is wrong), await conditions with a deadline."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


async def produce(bootstrap: str, topic: str, records: Sequence[tuple[bytes | None, bytes | None]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_topic(
    bootstrap: str, topic: str, min_count: int = 0, timeout: float = 60.0, **client: Any
) -> list[Record]:
    """Every record of `topic`, once at least `min_count` are there and every partition is read to
    its high watermark. `client`: more consumer options (TLS: services.runtime.kafka_security)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest", **client
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout
        partitions = None
        while not partitions:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                await consumer._client.force_metadata_update()  # noqa: SLF001 - no public refresh
                if time.monotonic() > deadline:
                    raise TimeoutError(f"topic {topic} does not exist")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[Record] = []
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=10000)
            for tp, messages in batch.items():
                records.extend(
                    Record(tp.topic, tp.partition, m.offset, m.key, m.value, dict(m.headers or ())) for m in messages
                )
            if await _caught_up(consumer, tps) and len(records) >= min_count and not batch:
                return records
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: {len(records)} records after {timeout}s, wanted {min_count}")
    finally:
        await consumer.stop()


async def eventually(
    condition: Callable[[], Awaitable[bool]], timeout: float = 60.0, interval: float = 0.2, what: str = "condition"
) -> None:
    """Await `condition()` until true, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout}s")
        await asyncio.sleep(interval)


async def _caught_up(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> bool:
    for tp in tps:
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return True


def listening(port: int, host: str = "127.0.0.1") -> Callable[[], Awaitable[bool]]:
    """A condition for `eventually`: something accepts TCP connections on host:port (a server that a
    worker starts once its agents run, such as POST /reports)."""

    async def accepts() -> bool:
        try:
            socket.create_connection((host, port), timeout=1).close()
        except OSError:
            return False
        return True

    return accepts
