"""Forward `ceasefire.alerts.v1` (key fingerprint, compacted) to Alertmanager's POST /api/v2/alerts.

Input: every partition of the alerts topic, read from the beginning by a plain aiokafka consumer with
no group and no committed offsets: the compacted topic is the current state of every fingerprint.
Output: HTTP POSTs of `Batch`es (`alertmanager.py`). State: an `AlertBook`, in memory only.

Nothing is sent until the reader has caught up with the topic's end: before that, it holds records
that newer ones on the same partition overrule, and sending them would make Alertmanager fire an
alert again that it holds as resolved.

Every worker that runs it reads all partitions and sends every alert (no consumer group). That is on
purpose: Alertmanager merges alerts with the same labels and deduplicates notifications (its
notification log), so two forwarders sending the same alert cost a POST, not a second page; a worker
that stops leaves no partition unforwarded while a group rebalances; and the topic is small (one
record per fingerprint once compacted). What it costs: POSTs grow with the number of workers.

Failures never stop the worker: connection errors, timeouts, 5xx and 429 are retried with
exponential backoff and jitter; any other 4xx is logged with Alertmanager's reason and the batch is
given up (Alertmanager keeps the valid alerts of a batch it answers 400). Logs name the endpoint
without credentials and never hold the payload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import ValidationError

from schemas.alert import Alert
from schemas.topics import Role
from services.notify.alertmanager import AlertBook, Batch, alerts_endpoint, backoff_seconds, redacted
from services.runtime.kafka_security import client_options
from services.runtime.settings import Settings

log = logging.getLogger("ceasefire.notify")
FAILURE_REASONS = ("unreachable", "unavailable", "rejected")
Outcome = Literal["delivered", "retry", "rejected"]
RETRYABLE_STATUS = frozenset({408, 429})
REASON_CHARS = 300  # of Alertmanager's error text, in a log line


@dataclass(frozen=True)
class ForwarderMetrics:
    sent: Counter
    failures: Counter
    pending: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ForwarderMetrics:
        metrics = cls(
            sent=Counter(
                "ceasefire_alertmanager_sent_total",
                "Alerts Alertmanager accepted (each alert of a POST; resends count again).",
                registry=registry,
            ),
            failures=Counter(
                "ceasefire_alertmanager_failures_total",
                "POSTs to Alertmanager that failed: unreachable (connection, timeout), unavailable (5xx, 429;"
                " retried), rejected (other 4xx; given up).",
                ["reason"],
                registry=registry,
            ),
            pending=Gauge(
                "ceasefire_alertmanager_pending",
                "Alerts whose newest record Alertmanager does not have yet.",
                registry=registry,
            ),
        )
        for reason in FAILURE_REASONS:
            metrics.failures.labels(reason=reason)
        return metrics


class AlertForwarder:
    def __init__(
        self,
        settings: Settings,
        prometheus: CollectorRegistry,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if settings.alertmanager_url is None:
            raise ValueError("no Alertmanager URL (CEASEFIRE_ALERTMANAGER_URL)")
        self.settings = settings
        self.endpoint = alerts_endpoint(settings.alertmanager_url)
        self.shown = redacted(self.endpoint)
        self.resend = timedelta(seconds=settings.alertmanager_resend_seconds)
        self.book = AlertBook(settings.alertmanager_resend_seconds)
        self.metrics = ForwarderMetrics.create(prometheus)
        self.clock, self.wall = clock, wall
        self.caught_up = asyncio.Event()  # set once the reader first reached the topic's end
        self.changed = asyncio.Event()

    async def run(self) -> None:
        """Read and send for ever (a task of the worker)."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._forever(self._read, "alert reader"))
            group.create_task(self._forever(self._send, "Alertmanager sender"))

    async def _forever(self, loop: Callable[[], Awaitable[None]], name: str) -> None:
        while True:
            try:
                await loop()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - forwarding is an aid: logged, started again, never fatal
                log.warning("%s stopped; starting it again", name, exc_info=True)
                await asyncio.sleep(1)

    # -- reading -------------------------------------------------------------------------------

    async def _read(self) -> None:
        topic = self.settings.topic(Role.ALERTS)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap, enable_auto_commit=False, **client_options(self.settings)
        )
        await consumer.start()
        try:
            tps: list[TopicPartition] = []
            while not tps:
                tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
                if not tps:
                    await consumer.force_metadata_update()
                    await asyncio.sleep(0.5)
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while True:
                try:
                    batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                except KafkaError as exc:  # the broker watch decides about a lost broker
                    log.warning("alert reader: %r", exc)
                    await asyncio.sleep(1)
                    continue
                if self._take_in(message for messages in batch.values() for message in messages):
                    self.changed.set()
                if not self.caught_up.is_set() and await _at_end(consumer, tps):
                    log.info("alert reader caught up: %d alerts held, %d to send", len(self.book.versions), self.book.pending)
                    self.caught_up.set()
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    def _take_in(self, messages: Iterable[ConsumerRecord[bytes, bytes]]) -> bool:
        taken = False
        for message in messages:
            if message.value is None:
                continue
            try:
                alert = Alert.model_validate_json(message.value)
            except ValidationError as exc:
                log.warning("alert record at %s/%d is not an alert (%d errors): skipped",
                            message.partition, message.offset, exc.error_count())
                continue
            taken = self.book.offer(alert) or taken
        self.metrics.pending.set(self.book.pending)
        return taken

    # -- sending -------------------------------------------------------------------------------

    async def _send(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.settings.alertmanager_timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await self.caught_up.wait()
            attempt = 0
            while True:
                await self._wait_for_work()
                self.changed.clear()
                batch = self.book.take(self.clock(), self.settings.alertmanager_batch_max)
                if not batch:
                    continue
                outcome = await self._post(session, batch)
                if outcome == "retry":
                    attempt += 1
                    await asyncio.sleep(backoff_seconds(attempt, self.settings.alertmanager_backoff_max_seconds))
                    continue
                attempt = 0
                self.book.mark_delivered(batch, self.clock())
                self.metrics.pending.set(self.book.pending)
                if outcome == "delivered":
                    self.metrics.sent.inc(len(batch))

    async def _wait_for_work(self) -> None:
        if self.book.pending:
            return
        due = self.book.next_due(self.clock())
        if due == 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.changed.wait(), due)

    async def _post(self, session: aiohttp.ClientSession, batch: Batch) -> Outcome:
        body = orjson.dumps(batch.payload(self.wall(), self.resend, self.settings.alertmanager_generator_url))
        try:
            async with session.post(self.endpoint, data=body, headers={"Content-Type": "application/json"}) as response:
                if response.status < 300:
                    return "delivered"
                reason = (await response.text(errors="replace"))[:REASON_CHARS].strip()
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.metrics.failures.labels(reason="unreachable").inc()
            log.warning("Alertmanager at %s unreachable (%s); %d alerts wait", self.shown, type(exc).__name__, len(batch))
            return "retry"
        if response.status >= 500 or response.status in RETRYABLE_STATUS:
            self.metrics.failures.labels(reason="unavailable").inc()
            log.warning("Alertmanager at %s answered %d (%s); retrying", self.shown, response.status, reason)
            return "retry"
        self.metrics.failures.labels(reason="rejected").inc()
        log.error("Alertmanager at %s refused a batch of %d alerts with %d: %s", self.shown, len(batch), response.status, reason)
        return "rejected"


async def _at_end(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> bool:
    """Every partition read to the high watermark of its last fetch (not ListOffsets: the embedded
    broker answers that wrongly)."""
    for tp in tps:
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return True

