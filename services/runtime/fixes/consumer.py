"""A Faust app whose consumer polls with a configurable fetch wait and loses or stalls no record at start-up.

Faust hard-codes `fetch_max_wait_ms=1500`. Apache Kafka answers a long poll as soon as data arrives,
so the value costs nothing there; the embedded broker (Tansu 0.6.0) holds every fetch for its full
wait (measured: ~550 ms per hop with 1500 asked, 3–13 ms with 50), which would add seconds to
end-to-end latency over our four hops. `CEASEFIRE_FETCH_MAX_WAIT_MS` sets it.

Four races in Faust's (0.15.3) hand-over from table recovery to the streams (docs/broker.md, "Worker
that never consumes" and "Commit that creeps after a restart"):

1. Faust hands its *live* set of active partitions to the consumer thread, and aiokafka reads an empty
   set as "every partition". Right after table recovery the main thread pauses the changelog
   partitions before it resumes the stream partitions: a drain in that instant takes the records of
   the still-paused stream partitions, Faust discards them (not active), and the fetch position has
   moved past them. For a partition with no committed offset nothing seeks it back, so the worker
   owns the partition, shows lag, and never processes those records.
2. At the end of recovery Faust resumes the stream partitions, awaits a seek to the committed offsets
   (round trips to the broker, while the fetcher keeps delivering), then calls
   `flow_control.resume()`, which empties every stream buffer even though flow was never suspended.
   Records delivered in that window are dropped without an ack; later ones are acked, so the commit
   stops at the gap for good. Our flow control empties the buffers only when flow resumes after a
   suspension (a rebalance), which is when they can hold another generation's records.
3. That same seek ends by setting each partition's *read offset* (the last offset handed to the
   streams) back to the committed offset, while the drain loop is still handing over the records
   fetched before it. The next record then looks like a jump from the committed offset, and Faust
   books the range in between as a gap (offsets with no record, as after compaction) although those
   records were delivered and get acked too: each offset of it is then twice in the ack list, and
   Faust's commit advances one offset per commit interval (2.8 s) through such a list. After a
   crash, with committed offsets and a backlog, that is hundreds of offsets: lag stuck for many
   minutes, nothing lost. Our seek keeps a read offset that this assignment already moved past the
   committed offset; the records re-fetched from the committed offset up to it are skipped as already
   delivered (they are in the stream buffers), so no gap is booked.
4. The opposite at a rebalance: flow was suspended, so the stream buffers *are* emptied when it
   resumes, and a read offset kept by the seek (3.) — or left by the drain loop from the previous
   generation — makes the drain skip records nobody will process. Faust drops the acks of records
   processed but not yet committed at every revocation, so a worker that keeps a partition across a
   rebalance must read it again from its commit; with no commit yet, aiokafka starts it from the
   beginning and Faust skipped all of it: the partition showed lag for ever and event time stalled
   (a backlog read by a worker when a second one joined, tests/e2e/test_arrival_order.py). After a
   suspension our seek sets every read offset to the committed offset and seeks a partition that
   has none to its beginning. A partition with no commit and nothing handed over in this assignment
   is sought to its beginning after any assignment: records of it fetched and then dropped before
   the seek (race 1 by another path: a pause between fetch and hand-over) are read again, as aiokafka's
   seek to the committed offset already does for a partition that has one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiokafka
import faust
from faust.transport.consumer import RecordMap, ensure_TP
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as FaustAIOKafkaConsumer
from faust.types import TP, ConsumerT, TransportT
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

from services.runtime.fixes.store_memory import StoreMemory

PREFETCH_BACKOFF_SECONDS = 0.005


class _ShortPollThread(AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: TransportT) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms  # noqa: SLF001 - read by start()
        return consumer

    async def on_start(self) -> None:
        """aiokafka sends no fetch to a broker while any partition's fetched records wait to be taken,
        for up to its `prefetch_backoff` (100 ms, not a consumer setting). With every partition on one
        broker, one busy agent then held back every other agent's records: ~100 ms per hop at p99."""
        await super().on_start()
        self._consumer._fetcher._prefetch_backoff = PREFETCH_BACKOFF_SECONDS  # noqa: SLF001

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
    positioned: frozenset[TP] = frozenset()  # this assignment's partitions seeked to their commits (`positioned`)

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _ShortPollThread(self, loop=self.loop, beacon=self.beacon)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        """Revoked partitions are no longer positioned (Faust forgets their committed offsets here)."""
        self.positioned = self.positioned - set(revoked)
        await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        """Start the assignment with no read offsets, so any found at the seek were set by this one.

        Faust forgets them on revocation, but the drain loop can write one more for a record whose
        hand-over the revocation interrupted.
        """
        self.positioned = frozenset()
        for tp in assigned:
            self._read_offset.pop(tp, None)
        await super().on_partitions_assigned(assigned, generation_id)

    async def perform_seek(self) -> None:
        """Seek to the committed offsets without rewinding what this assignment already handed over,
        unless flow is suspended (a rebalance): then the stream buffers are emptied when it resumes,
        so every partition is read again from its committed offset. A partition with no commit and
        nothing handed over is sought to its start, as one with a commit is to it (races 1 and 4 in
        the module's docstring)."""
        rewinding = not self.app.flow_control.is_active()
        found = await self.seek_to_committed()
        changelogs = self.app.tables.changelog_topics  # restored from their own offsets, never committed
        unstarted = [
            tp for tp, offset in found.items()
            if tp.topic not in changelogs and (offset is None or offset <= 0)
            and (rewinding or self._read_offset.get(ensure_TP(tp)) is None)
        ]
        if unstarted:
            await self._thread.seek_to_beginning(*unstarted)
        committed = {ensure_TP(tp): offset for tp, offset in found.items()}
        for tp, offset in committed.items():
            start = offset if offset is not None and offset >= 0 else None
            delivered = self._read_offset.get(tp)
            if rewinding or delivered is None or (start is not None and delivered < start):
                self._read_offset[tp] = start
        self._committed_offset.update({tp: offset or None for tp, offset in committed.items() if offset is not None})
        self.positioned = frozenset(committed)


class MonitorApp(faust.App):
    fetch_max_wait_ms: int = 1500

    def __init__(
        self,
        *args: Any,
        fetch_max_wait_ms: int = 1500,
        table_options: dict[str, int] | None = None,
        store_memory: StoreMemory | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.table_options = dict(table_options or {})  # RocksDB options for `tables.fenced_table`
        self.store_memory = store_memory  # every RocksDB store of the worker shares it

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


def committed_offsets(consumer: ConsumerT) -> Mapping[TP, int | None]:
    """The offsets this worker committed, per partition (fix C1: Faust keeps no public accessor)."""
    return consumer._committed_offset  # type: ignore[attr-defined, no-any-return]


def positioned(consumer: ConsumerT) -> frozenset[TP]:
    """The partitions of this assignment whose committed offsets are known (fix C2).

    Each rebalance revokes every partition, and Faust forgets their committed offsets then; it reads
    them again only at the seek that ends table recovery. Until that seek `assignment()` already lists
    a partition and timers run, but its committed offset is unknown and its tables may be half
    restored. Faust has no flag for that moment per partition (`app.rebalancing` and `in_recovery`
    are not reset when a recovery ends for a generation already superseded)."""
    return getattr(consumer, "positioned", frozenset())  # a consumer of ours has it; another: none
