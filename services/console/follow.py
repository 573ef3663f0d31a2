"""Reading output topics for a person at a terminal: `ceasefire incidents` and `ceasefire alerts`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from services.runtime.broker import BrokerError, quiet_client_logs
from services.runtime.settings import Settings
from services.runtime.watchdog import INTERVAL_SECONDS, BrokerWatch, ask_cluster_id, hold_client_logs


async def read_values(settings: Settings, topic: str, follow: bool, idle_seconds: float = 1.0) -> AsyncIterator[bytes]:
    """Every value of `topic` from the beginning; with `follow`, keep waiting for more.

    Without `follow` it stops once every partition is read to its fetch high watermark (the embedded
    broker's ListOffsets answer cannot be trusted for that). A broker that goes away is said once and,
    after `CEASEFIRE_BROKER_LOST_SECONDS` (or at once if another cluster answers), is a BrokerError:
    one line and exit code 2 for the person, not endless retries (services/runtime/watchdog.py).
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, request_timeout_ms=int(INTERVAL_SECONDS * 1000))
    try:
        with quiet_client_logs():
            await consumer.start()
            await admin.start()
            cluster_id = str((await admin.describe_cluster())["cluster_id"])
    except (KafkaError, OSError) as exc:
        await _close(consumer, admin)
        raise BrokerError(f"cannot reach the Kafka broker at {settings.bootstrap}: {exc!r}") from None
    watch = BrokerWatch(cluster_id, settings.broker_lost_seconds or float("inf"))
    hold_client_logs(True)  # a person reads records here, and one line if the broker goes: not its retries
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            raise BrokerError(f"topic {topic} does not exist (has a worker started?)")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        quiet_since = checked = time.monotonic()
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            for messages in batch.values():
                for message in messages:
                    if message.value is not None:
                        yield message.value
            now = time.monotonic()
            if batch:
                quiet_since = checked = now
            elif now - checked >= INTERVAL_SECONDS:
                checked = now
                await _still_there(admin, watch, settings.bootstrap)
            if not batch and not follow and now - quiet_since > idle_seconds and await _at_end(consumer, tps):
                return
    finally:
        await _close(consumer, admin)
        hold_client_logs(False)


async def _close(consumer: AIOKafkaConsumer, admin: AIOKafkaAdminClient) -> None:
    """Stop the clients, even with the broker gone: aiokafka's fetcher then leaks the cancellation of
    its own retry task out of `stop()`, which would hide the one line the person is owed."""
    for closing in (consumer.stop(), admin.close()):
        with contextlib.suppress(asyncio.CancelledError, KafkaError, OSError, TimeoutError):
            await asyncio.wait_for(closing, 5)


async def _still_there(admin: AIOKafkaAdminClient, watch: BrokerWatch, bootstrap: str) -> None:
    answer = await ask_cluster_id(admin, INTERVAL_SECONDS)
    verdict = watch.answer(answer, time.monotonic())
    if verdict == "other_cluster":
        raise BrokerError(f"the broker at {bootstrap} is another Kafka cluster now: its topics are not the ones read")
    if verdict == "gone":
        raise BrokerError(f"the broker at {bootstrap} has not answered for {watch.lost_after:g} s")


async def _at_end(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> bool:
    for tp in tps:
        highwater = consumer.highwater(tp)
        if highwater is not None and await consumer.position(tp) < highwater:
            return False
    return True
