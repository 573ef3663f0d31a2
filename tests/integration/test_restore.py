"""The raw-consumer rebuild of table partitions (services/runtime/fixes/restore.py) against the real broker.

The store is a stand-in with Faust's RocksDB interface over real rocksdict databases; the changelog is
a real topic written in several batches, its last batch many records long: the case where the
embedded broker's `ListOffsets(latest)` answer is short and only the fetch high watermark is right.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faust.types import TP
from rocksdict import Options, Rdict
from yarl import URL

from services.runtime.fixes.epochs import NEWEST_FENCE_KEY, epoch_headers, owner_fence_headers
from services.runtime.fixes.restore import bootstrap_servers, owner_fence_between, rebuild

pytestmark = pytest.mark.asyncio


class RdictStore:
    """What `rebuild` uses of Faust's RocksDB store: its offset key, persisted offset, partition DBs."""

    offset_key = b"__faust\0offset__"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dbs: dict[int, Rdict] = {}

    def _db_for_partition(self, partition: int) -> Rdict:
        if partition not in self.dbs:
            self.dbs[partition] = Rdict(str(self.root / f"p{partition}"), options=Options(raw_mode=True))
        return self.dbs[partition]

    def persisted_offset(self, tp: TP) -> int | None:
        value = self._db_for_partition(tp.partition).get(self.offset_key)
        return None if value is None else int(value)

    def contents(self, partition: int) -> dict[bytes, bytes]:
        return {k: v for k, v in self._db_for_partition(partition).items() if k not in (self.offset_key, NEWEST_FENCE_KEY)}


class Broker:
    """What `rebuild` reads of the app: the broker URLs and the fetch wait."""

    def __init__(self, url: str) -> None:
        self.conf = SimpleNamespace(broker=[URL(url)], broker_credentials=None, ssl_context=None)
        self.fetch_max_wait_ms = 20


async def write_batches(bootstrap: str, topic: str, batches: list[list[tuple[int, bytes, bytes | None]]]) -> None:
    """Each inner list leaves as one produce request (sent, then awaited before the next)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)
    await producer.start()
    try:
        for batch in batches:
            futures = [await producer.send(topic, value, key=key, partition=p) for p, key, value in batch]
            for future in futures:
                await future
    finally:
        await producer.stop()


def replay(batches: list[list[tuple[int, bytes, bytes | None]]], partition: int) -> dict[bytes, bytes]:
    state: dict[bytes, bytes] = {}
    for batch in batches:
        for p, key, value in batch:
            if p != partition:
                continue
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
    return state


async def test_rebuild_reads_every_batch_then_only_the_tail(broker, tmp_path: Path) -> None:
    topic = f"restore-{tmp_path.name}"
    app = Broker(broker.url)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(app))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    first = [
        [(p, f"k{i % 37}".encode(), f"v{i}".encode()) for i in range(400) for p in (0, 1)],
        [(0, f"k{i}".encode(), None) for i in range(0, 37, 3)],  # deletes
        [(1, f"k{i}".encode(), f"w{i}".encode()) for i in range(500)],  # a long last batch
        [(0, f"k{i}".encode(), f"x{i}".encode()) for i in range(300)],
    ]
    await write_batches(bootstrap_servers(app), topic, first)
    store = RdictStore(tmp_path)

    restored = await rebuild(app, store, topic, [0, 1])  # type: ignore[arg-type]

    assert restored.records == sum(len(b) for b in first)
    for partition in (0, 1):
        assert store.contents(partition) == replay(first, partition)
    assert store.persisted_offset(TP(topic, 0)) == 400 + 13 + 300 - 1
    assert store.persisted_offset(TP(topic, 1)) == 400 + 500 - 1

    more = [[(0, b"k1", None), (0, b"k2", b"late")], [(1, f"k{i}".encode(), b"y") for i in range(50)]]
    await write_batches(bootstrap_servers(app), topic, more)

    tail = await rebuild(app, store, topic, [0, 1])  # type: ignore[arg-type]

    assert tail.records == 52
    for partition in (0, 1):
        assert store.contents(partition) == replay(first + more, partition)


async def test_rebuild_leaves_out_what_a_cut_off_owner_sent_after_the_new_owners_fence(broker, tmp_path: Path) -> None:
    """Record headers on the real broker (services/runtime/fixes/epochs.py): A owns the partition, B's
    fence ends A's epoch, A's queued records land after it and are not applied; then a tail restore
    resumes with the newest fence it had kept."""
    topic = f"restore-{tmp_path.name}"
    bootstrap = bootstrap_servers(Broker(broker.url))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()

    async def write(key: bytes, value: bytes | None, headers: list[tuple[str, bytes]]) -> int:
        return (await producer.send_and_wait(topic, value, key=key, partition=0, headers=headers)).offset

    try:
        a = await write(b"~fence", None, owner_fence_headers())
        await write(b"k1", b"a1", epoch_headers(a))
        b = await write(b"~fence", None, owner_fence_headers())
        await write(b"k2", b"b2", epoch_headers(b))
        await write(b"k1", b"zombie", epoch_headers(a))  # A's, sent when its link healed
        await write(b"k3", b"zombie", epoch_headers(a))
        store = RdictStore(tmp_path)
        await rebuild(Broker(broker.url), store, topic, [0])  # type: ignore[arg-type]
        assert store.contents(0) == {b"k1": b"a1", b"k2": b"b2"}
        await write(b"k4", b"zombie", epoch_headers(a))
        await write(b"k5", b"b5", epoch_headers(b))
        await rebuild(Broker(broker.url), store, topic, [0])  # type: ignore[arg-type]
        assert store.contents(0) == {b"k1": b"a1", b"k2": b"b2", b"k5": b"b5"}
    finally:
        await producer.stop()


async def test_another_owners_fence_between_two_writes_is_found(broker, tmp_path: Path) -> None:
    """What a worker reads when records of others came between two of its writes (tables.py
    `_check_owned`): a standby's fence is not another owner's."""
    topic = f"gap-{tmp_path.name}"
    app = Broker(broker.url)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers(app))
    await producer.start()
    try:
        mine = (await producer.send_and_wait(topic, b"x", key=b"k", partition=0, headers=epoch_headers(0))).offset
        standby = (await producer.send_and_wait(topic, None, key=b"~fence", partition=0)).offset
        owner = (await producer.send_and_wait(topic, None, key=b"~fence", partition=0, headers=owner_fence_headers())).offset
    finally:
        await producer.stop()
    assert not await owner_fence_between(app, topic, {0: (mine + 1, standby + 1)})
    assert await owner_fence_between(app, topic, {0: (mine + 1, owner + 1)})
