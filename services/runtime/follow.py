"""Reading output topics for a person at a terminal: `ceasefire incidents` and `ceasefire alerts`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from services.runtime.broker import BrokerError, quiet_client_logs
from services.runtime.settings import Settings


async def read_values(settings: Settings, topic: str, follow: bool, idle_seconds: float = 1.0) -> AsyncIterator[bytes]:
    """Every value of `topic` from the beginning; with `follow`, keep waiting for more.

    Without `follow` it stops once every partition is read to its fetch high watermark (the embedded
    broker's ListOffsets answer cannot be trusted for that).
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False)
    try:
        with quiet_client_logs():
            await consumer.start()
    except (KafkaError, OSError) as exc:
        await consumer.stop()
        raise BrokerError(f"cannot reach the Kafka broker at {settings.bootstrap}: {exc!r}") from None
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            raise BrokerError(f"topic {topic} does not exist (has a worker started?)")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        quiet_since = time.monotonic()
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            for messages in batch.values():
                for message in messages:
                    if message.value is not None:
                        yield message.value
            if batch:
                quiet_since = time.monotonic()
            elif not follow and time.monotonic() - quiet_since > idle_seconds and await _at_end(consumer, tps):
                return
    finally:
        await consumer.stop()


async def _at_end(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> bool:
    for tp in tps:
        highwater = consumer.highwater(tp)
        if highwater is not None and await consumer.position(tp) < highwater:
            return False
    return True
