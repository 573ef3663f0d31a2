"""A Faust app whose consumer polls with a configurable fetch wait and loses no record at start-up.

Faust hard-codes `fetch_max_wait_ms=1500`. Apache Kafka answers a long poll as soon as data arrives,
so the value costs nothing there; the embedded broker (Tansu 0.6.0) holds every fetch for its full
wait (measured: ~550 ms per hop with 1500 asked, 3–13 ms with 50), which would add seconds to
end-to-end latency over our four hops. `CEASEFIRE_FETCH_MAX_WAIT_MS` sets it.

Faust (0.15.3) hands its *live* set of active partitions to the consumer thread, and aiokafka reads an
empty set as "every partition". Right after table recovery the main thread pauses the changelog
partitions before it resumes the stream partitions: a drain in that instant takes the records of the
still-paused stream partitions, Faust discards them (not active), and the fetch position has moved
past them. For a partition with no committed offset nothing seeks it back, so the worker owns the
partition, shows lag, and never processes those records (docs/broker.md, "Worker that never consumes").

At the end of recovery Faust resumes the stream partitions, awaits a seek to the committed offsets
(round trips to the broker, while the fetcher keeps delivering), then calls `flow_control.resume()`,
which empties every stream buffer even though flow was never suspended. Records delivered in that
window are dropped without an ack; later ones are acked, so the commit stops at the gap for good.
Our flow control empties the buffers only when flow resumes after a suspension (a rebalance), which
is when they can hold another generation's records.
"""

from __future__ import annotations

from typing import Any

import aiokafka
import faust
from faust.transport.consumer import RecordMap
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as FaustAIOKafkaConsumer
from faust.types import TP, ConsumerT, TransportT
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent


class _ShortPollThread(AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: TransportT) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms  # noqa: SLF001 - read by start()
        return consumer

    async def _fetch_records(
        self,
        consumer: aiokafka.AIOKafkaConsumer,
        active_partitions: set[TP] | None,
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> RecordMap:
        """Drain only what was active when this drain began; an empty set drains nothing.

        The copy is taken here, on the consumer thread, where aiokafka reads it (a set copy is atomic
        under the GIL); the main thread keeps pausing and resuming its own set meanwhile.
        """
        if active_partitions is not None:
            active_partitions = set(active_partitions)
            if not active_partitions:
                return {}
        return await super()._fetch_records(consumer, active_partitions, timeout=timeout, max_records=max_records)


class _ResumeKeepsBuffers(FlowControlEvent):
    def resume(self) -> None:
        """Empty the stream buffers only when coming back from a suspension.

        While flow is active, the buffers hold this generation's records, delivered and not yet acked:
        emptying them loses those records and blocks the partition's commit at the gap.
        """
        if self.is_active():
            return
        super().resume()


class _ShortPollConsumer(FaustAIOKafkaConsumer):
    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _ShortPollThread(self, loop=self.loop, beacon=self.beacon)


class MonitorApp(faust.App):
    fetch_max_wait_ms: int = 1500

    def __init__(self, *args: Any, fetch_max_wait_ms: int = 1500, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetch_max_wait_ms = fetch_max_wait_ms

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return _ResumeKeepsBuffers(loop=self.loop)

    def _new_consumer(self) -> ConsumerT:
        return _ShortPollConsumer(
            self.transport,
            callback=self.topics.on_message,
            loop=self.transport.loop,
            on_partitions_revoked=self._on_partitions_revoked,
            on_partitions_assigned=self._on_partitions_assigned,
            beacon=self.beacon,
        )
