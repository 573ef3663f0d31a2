"""Reading topics for a person at a terminal: `ceasefire incidents`, `alerts`, `fragility`,
`dead-letters`, `report-status` and `post --wait`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from types import TracebackType

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from services.runtime.broker import BrokerError, quiet_client_logs
from services.runtime.kafka_security import client_options
from services.runtime.settings import Settings
from services.runtime.watchdog import INTERVAL_SECONDS, BrokerWatch, ask_cluster_id, hold_client_logs


class BrokerLost(BrokerError):
    """The broker answered at the start and is gone now (or another cluster answers on its address):
    a person is told once, and the command exits as a worker would (README: 69)."""


class TopicReader:
    """A consumer on some topics (every partition, no group) and the broker watch beside it.

    A broker that goes away is said once and, after `CEASEFIRE_BROKER_LOST_SECONDS` (or at once if
    another cluster answers), is a BrokerLost: one line for the person, not endless retries
    (services/runtime/watchdog.py). Topics that do not exist are left out; none at all is a BrokerError.
    """

    def __init__(self, settings: Settings, topics: Sequence[str]) -> None:
        self.settings, self.topics = settings, list(topics)
        security = client_options(settings)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False, **security)
        self.admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.bootstrap, request_timeout_ms=int(INTERVAL_SECONDS * 1000), **security
        )
        self.tps: list[TopicPartition] = []
        self.watch: BrokerWatch | None = None

    async def __aenter__(self) -> TopicReader:
        try:
            with quiet_client_logs():
                await self.consumer.start()
                await self.admin.start()
                cluster_id = str((await self.admin.describe_cluster())["cluster_id"])
        except (KafkaError, OSError) as exc:
            await self._close()
            raise BrokerError(f"cannot reach the Kafka broker at {self.settings.bootstrap}: {exc!r}") from None
        self.watch = BrokerWatch(cluster_id, self.settings.broker_lost_seconds or float("inf"))
        hold_client_logs(True)  # a person reads records here, and one line if the broker goes: not its retries
        try:
            self.tps = [
                TopicPartition(t, p) for t in self.topics for p in sorted(self.consumer.partitions_for_topic(t) or ())
            ]
            if not self.tps:
                raise BrokerError(f"topic {' / '.join(self.topics)} does not exist (has a worker started?)")
            self.consumer.assign(self.tps)
            await self.consumer.seek_to_beginning(*self.tps)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        await self._close()
        hold_client_logs(False)

    async def from_end(self) -> None:
        """Read only what comes after now. The embedded broker's end offset may lie a little before the
        true end (docs/broker.md): a few older records are read again, none newer is skipped."""
        await self.consumer.seek_to_end(*self.tps)

    async def records(self, follow: bool, idle_seconds: float = 1.0) -> AsyncIterator[ConsumerRecord]:
        """Every record from the position; without `follow`, until every partition is read to its
        fetch high watermark (the embedded broker's ListOffsets answer cannot be trusted for that)."""
        quiet_since = checked = time.monotonic()
        while True:
            batch = await self.consumer.getmany(timeout_ms=200, max_records=5000)
            for messages in batch.values():
                for message in messages:
                    yield message
            now = time.monotonic()
            if batch:
                quiet_since = checked = now
            elif now - checked >= INTERVAL_SECONDS:
                checked = now
                await self._still_there()
            if not batch and not follow and now - quiet_since > idle_seconds and await self._at_end():
                return

    async def _close(self) -> None:
        """Stop the clients, even with the broker gone: aiokafka's fetcher then leaks the cancellation of
        its own retry task out of `stop()`, which would hide the one line the person is owed."""
        for closing in (self.consumer.stop(), self.admin.close()):
            with contextlib.suppress(asyncio.CancelledError, KafkaError, OSError, TimeoutError):
                await asyncio.wait_for(closing, 5)

    async def _still_there(self) -> None:
        assert self.watch is not None  # noqa: S101 - set on entry
        answer = await ask_cluster_id(self.admin, INTERVAL_SECONDS)
        verdict = self.watch.answer(answer, time.monotonic())
        bootstrap = self.settings.bootstrap
        if verdict == "other_cluster":
            raise BrokerLost(f"the broker at {bootstrap} is another Kafka cluster now: its topics are not the ones read")
        if verdict == "gone":
            raise BrokerLost(f"the broker at {bootstrap} has not answered for {self.watch.lost_after:g} s")

    async def _at_end(self) -> bool:
        for tp in self.tps:
            highwater = self.consumer.highwater(tp)
            if highwater is not None and await self.consumer.position(tp) < highwater:
                return False
        return True


async def read_values(settings: Settings, topic: str, follow: bool, idle_seconds: float = 1.0) -> AsyncIterator[bytes]:
    """Every value of `topic` from the beginning; with `follow`, keep waiting for more."""
    async with TopicReader(settings, [topic]) as reader:
        async for message in reader.records(follow, idle_seconds):
            if message.value is not None:
                yield message.value
