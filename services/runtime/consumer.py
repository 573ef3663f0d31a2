"""A Faust app whose consumer polls with a configurable fetch wait.

Faust hard-codes `fetch_max_wait_ms=1500`. Apache Kafka answers a long poll as soon as data arrives,
so the value costs nothing there; the embedded broker (Tansu 0.6.0) holds every fetch for its full
wait (measured: ~550 ms per hop with 1500 asked, 3–13 ms with 50), which would add seconds to
end-to-end latency over our four hops. `CEASEFIRE_FETCH_MAX_WAIT_MS` sets it.
"""

from __future__ import annotations

from typing import Any

import aiokafka
import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as FaustAIOKafkaConsumer
from faust.types import ConsumerT, TransportT


class _ShortPollThread(AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: TransportT) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms  # noqa: SLF001 - read by start()
        return consumer


class _ShortPollConsumer(FaustAIOKafkaConsumer):
    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _ShortPollThread(self, loop=self.loop, beacon=self.beacon)


class MonitorApp(faust.App):
    fetch_max_wait_ms: int = 1500

    def __init__(self, *args: Any, fetch_max_wait_ms: int = 1500, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetch_max_wait_ms = fetch_max_wait_ms

    def _new_consumer(self) -> ConsumerT:
        return _ShortPollConsumer(
            self.transport,
            callback=self.topics.on_message,
            loop=self.transport.loop,
            on_partitions_revoked=self._on_partitions_revoked,
            on_partitions_assigned=self._on_partitions_assigned,
            beacon=self.beacon,
        )
