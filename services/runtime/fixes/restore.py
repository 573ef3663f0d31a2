"""Rebuild a table's local RocksDB partitions from their changelogs at the speed of a raw consumer.

Faust restores a table one changelog record at a time through its recovery loop (a queue hand-off,
two formatted debug strings, an offsets scan per record): ~200 µs a record, 2,300–4,800 records/s
in the benchmarks, so the 8 changelog records a report leaves behind cost minutes to rebuild after
a crash or a takeover. Here the partitions a worker was just given are read by a plain aiokafka
consumer (no group) in fetch-sized batches, each written as one RocksDB write batch together with
the partition's persisted offset; Faust's own recovery, which runs next, then starts from that offset
and finds nothing left but what arrived meanwhile.

The read goes to the partition's end as `ListOffsets` reports it, which the fence (tables.py) has just
made exact on the embedded broker (on Apache Kafka it is exact anyway), or further if a fetch's high
watermark says there is more. Anything written after that is read by Faust's recovery as before.
Records are applied as Faust applies them (value None deletes the key), so the store ends byte for
byte where Faust's path would end; a zombie's records are left out on both paths (epochs.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.stores.rocksdb import Store as RocksDBStore
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types import TP
from rocksdict import WriteBatch

from services.runtime.fixes.epochs import NEWEST_FENCE_KEY, admitted, is_owner_fence, stored_fence

log = logging.getLogger("ceasefire.restore")

FETCH_BYTES = 4 * 1024 * 1024  # per partition and fetch: ~10K records, a bounded transient (memory bar)
STALL_SECONDS = 30.0  # no record for this long while records are still owed: leave the rest to Faust


@dataclass
class Restored:
    """What one rebuild read: the bench reports it next to Faust's own recovery time."""

    records: int = 0
    seconds: float = 0.0


def bootstrap_servers(app: Any) -> str:
    return ",".join(f"{url.host}:{url.port or 9092}" for url in app.conf.broker)


def _reader(app: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(app),
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=FETCH_BYTES,
        fetch_max_bytes=4 * FETCH_BYTES,
        fetch_max_wait_ms=getattr(app, "fetch_max_wait_ms", 500),
        auto_offset_reset="earliest",
        **credentials_to_aiokafka_auth(app.conf.broker_credentials, app.conf.ssl_context),
    )


async def owner_fence_between(app: Any, topic: str, ranges: dict[int, tuple[int, int]]) -> bool:
    """Whether another owner's fence (epochs.py) lies in any partition's offsets [first, end): records
    that reached a changelog partition between two of this worker's writes."""
    consumer = _reader(app)
    await consumer.start()
    try:
        owed = {TopicPartition(topic, p): end for p, (_, end) in ranges.items()}
        consumer.assign(list(owed))
        for tp in owed:
            consumer.seek(tp, ranges[tp.partition][0])
        deadline = time.monotonic() + STALL_SECONDS
        while owed and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(*owed, timeout_ms=1000)).items():
                for record in records:
                    if record.offset < owed.get(tp, 0) and is_owner_fence(record.headers):
                        return True
                if records and records[-1].offset + 1 >= owed.get(tp, 0):
                    owed.pop(tp, None)
        return False
    finally:
        await consumer.stop()


async def rebuild(app: Any, store: RocksDBStore, topic: str, partitions: list[int]) -> Restored:
    """Bring each partition's RocksDB up to its changelog's end, from its persisted offset on."""
    began = time.monotonic()
    done = Restored()
    if not partitions:
        return done
    consumer = _reader(app)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        owed: dict[TopicPartition, int] = {}
        for tp in tps:
            persisted = store.persisted_offset(TP(topic, tp.partition))
            start = 0 if persisted is None else persisted + 1
            if start < ends[tp]:
                consumer.seek(tp, start)
                owed[tp] = ends[tp]
        last_progress = time.monotonic()
        while owed:
            fetched = await consumer.getmany(*owed, timeout_ms=1000)
            if not fetched and time.monotonic() - last_progress > STALL_SECONDS:
                log.warning("changelog %s: no records for %.0f s with %s still owed; Faust's recovery reads the rest",
                            topic, STALL_SECONDS, {tp.partition: end for tp, end in owed.items()})
                break
            for tp, records in fetched.items():
                if records:
                    _apply(store, topic, tp.partition, records)
                    done.records += len(records)
                    last_progress = time.monotonic()
                    # the fetch's high watermark is right even where ListOffsets is not (no fence)
                    end = max(owed.get(tp, 0), consumer.highwater(tp) or 0)
                    if records[-1].offset + 1 >= end:
                        owed.pop(tp, None)
                    else:
                        owed[tp] = end
    finally:
        await consumer.stop()
    done.seconds = time.monotonic() - began
    if done.records:
        log.info("changelog %s: %d records restored in %.2f s (%.0f/s)", topic, done.records, done.seconds,
                 done.records / max(done.seconds, 1e-9))
    return done


def write_batch(entries: Iterable[Any]) -> WriteBatch:
    """One RocksDB write batch of each entry's `key` → `value`, in order (a None value deletes): how
    Faust applies changelog records, and how the stages store theirs (`FencedTable.write_entries`)."""
    batch = WriteBatch(raw_mode=True)
    for entry in entries:
        if entry.value is None:
            batch.delete(entry.key)
        else:
            batch.put(entry.key, entry.value)
    return batch


def _apply(store: RocksDBStore, topic: str, partition: int, records: list[Any]) -> None:
    """One write batch: the records in offset order but a zombie's (epochs.py), then the persisted
    offset (Faust's own key) and the newest owner fence."""
    db = store._db_for_partition(partition)  # noqa: SLF001 - the partition's own DB
    newest, kept = stored_fence(db.get(NEWEST_FENCE_KEY)), []
    for record in records:
        take, newest = admitted(record.offset, record.headers, newest)
        if take:
            kept.append(record)
    batch = write_batch(kept)
    batch.put(store.offset_key, str(records[-1].offset).encode())
    batch.put(NEWEST_FENCE_KEY, str(newest).encode())
    db.write(batch)
