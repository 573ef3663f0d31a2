"""The receipts and placements topics, materialised: every worker reads both whole, so any worker
answers for any report (docs/reports.md, "Receipts").

Kept as the records' bytes, parsed when asked: ~300 bytes a report. (The archive of issue 20 is where
this belongs for a long-running mission; until then a worker holds them all.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from schemas.receipt import Placement, Receipt, receipt_key
from schemas.topics import Role
from services.runtime.kafka_security import client_options
from services.runtime.settings import Settings

log = logging.getLogger(__name__)
CATCH_UP_SECONDS = 3.0  # how long a lookup that finds nothing waits for the view to reach the topics' ends


@dataclass(frozen=True)
class Standing:
    receipt: Receipt
    placement: Placement | None


def answer(standing: Standing) -> dict[str, Any]:
    """The receipt, with the incident the report is in (null when none): `ceasefire report-status`."""
    body: dict[str, Any] = standing.receipt.model_dump(mode="json")
    placed = standing.placement
    in_force = standing.receipt.outcome == "accepted" and placed is not None and placed.incident_id is not None
    body["incident"] = (
        {"incident_id": placed.incident_id, "version": placed.incident_version, "revision": placed.revision}
        if in_force and placed is not None
        else None
    )
    return body


class ReceiptBook:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = {settings.topic(Role.RECEIPTS): Role.RECEIPTS, settings.topic(Role.PLACEMENTS): Role.PLACEMENTS}
        self.values: dict[Role, dict[str, bytes]] = {Role.RECEIPTS: {}, Role.PLACEMENTS: {}}
        self.consumer: AIOKafkaConsumer | None = None
        self.tps: list[TopicPartition] = []
        self.rounds = 0  # fetch rounds completed: a lookup waits for one that began after it

    async def run(self) -> None:
        """Read both topics from the beginning, for ever (a task of the worker): a failure of this view
        never stops the worker; it starts reading again."""
        while True:
            try:
                await self._read()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a lookup aid: logged, retried, never fatal
                log.warning("receipt view stopped; reading again", exc_info=True)
                await asyncio.sleep(1)

    async def _read(self) -> None:
        consumer = self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap, enable_auto_commit=False, **client_options(self.settings)
        )
        self.tps = []
        await consumer.start()
        try:
            while not self.tps:
                self.tps = [TopicPartition(t, p) for t in self.topics for p in sorted(consumer.partitions_for_topic(t) or ())]
                if not self.tps:
                    await consumer.force_metadata_update()
                    await asyncio.sleep(0.5)
            consumer.assign(self.tps)
            await consumer.seek_to_beginning(*self.tps)
            while True:
                try:
                    batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                except KafkaError as exc:  # the broker watch decides about a lost broker, not this view
                    log.warning("receipt view: %r", exc)
                    await asyncio.sleep(1)
                    continue
                for tp, messages in batch.items():
                    held = self.values[self.topics[tp.topic]]
                    for message in messages:
                        if message.key is not None and message.value is not None:
                            held[message.key.decode(errors="replace")] = message.value
                self.rounds += 1
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def standing(self, source: str, report_id: str) -> Standing | None:
        """The report's receipt and placement; None when no record names it, even once caught up."""
        key = receipt_key(source, report_id)
        if key not in self.values[Role.RECEIPTS]:
            await self._caught_up()
        raw = self.values[Role.RECEIPTS].get(key)
        if raw is None:
            return None
        placed = self.values[Role.PLACEMENTS].get(key)
        return Standing(Receipt.model_validate_json(raw), None if placed is None else Placement.model_validate_json(placed))

    async def _caught_up(self) -> None:
        """Wait (bounded) for a fetch round begun after now that leaves every partition at its end."""
        deadline, start = time.monotonic() + CATCH_UP_SECONDS, self.rounds
        while time.monotonic() < deadline:
            if self.rounds >= start + 2 and await self._at_end():
                return
            await asyncio.sleep(0.05)

    async def _at_end(self) -> bool:
        consumer = self.consumer
        if consumer is None or not self.tps:
            return False
        for tp in self.tps:
            highwater = consumer.highwater(tp)
            if highwater is not None and await consumer.position(tp) < highwater:
                return False
        return True
