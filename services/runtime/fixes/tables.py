"""Faust tables that survive the embedded broker's wrong `ListOffsets(latest)` answer.

Tansu answers "first offset of the last batch + 1" for a partition's end, and Faust restores a table
up to that answer: the newest changelog batch can be skipped. When the last batch holds one record
the answer is exact, so before each restore we append, alone and awaited, a tombstone for a reserved
key (the *fence*) to every changelog partition this worker was just given. On Apache Kafka the fence
is harmless: one tombstone per partition per rebalance.

The stages write a batch's entries at once (`write_entries`, or `PartitionEntries` for a state store
view) and read them with `entry`: one RocksDB write batch per partition and no per-key Faust path
(current-event lookup, sensors, serializer registry, `send_soon` with its FutureMessage, conductor
buffer and a RocksDB write of the persisted offset per record: most of correlate's state cost in the
bench profiles). Changelog records are kept in write order and sent by `changelog_sent`, which every
stage awaits before its batch is acknowledged; then each partition's newest offset is persisted once.
The local store is written first, as Faust does; the broker sees the same keys, values, partitions
and order as Faust's path would send (keys and values as UTF-8).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import faust
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP, CodecArg, EventT

from services.runtime.fixes.epochs import (
    NEWEST_FENCE_KEY,
    admitted,
    epoch_headers,
    gaps_between,
    owner_fence_headers,
    stored_fence,
)
from services.runtime.fixes.restore import Restored, owner_fence_between, rebuild, write_batch

FENCE_KEY = "~fence"
log = logging.getLogger("ceasefire.tables")


class Fenced(Exception):  # noqa: N818 - a state of the worker, not an error of the stage
    """Another worker was given a changelog partition as owner after this worker's epoch began, and
    this worker's writes reached the partition after its fence: it lost the partition without
    knowing (cut off from the broker past the session timeout). What it computed must not go out;
    its writes are left out of every restore (epochs.py)."""


class ChangelogWrite:
    """One table write waiting for `changelog_sent`; Faust's `on_key_set` reads `.message.partition`."""

    __slots__ = ("partition", "key", "value")

    def __init__(self, partition: int, key: bytes | None, value: bytes | None) -> None:
        self.partition, self.key, self.value = partition, key, value

    @property
    def message(self) -> ChangelogWrite:
        return self


class FencedTable(faust.Table):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # str keys and values as UTF-8, not JSON (Faust's choice for str): `entry`/`write_entries` rely on it
        self.key_serializer = self.value_serializer = "raw"
        self.unsent: list[ChangelogWrite] = []  # changelog records of the batch in hand, in write order
        self.restored = Restored()  # what the raw-consumer rebuilds read before Faust's recovery, summed
        self.epochs: dict[int, int] = {}  # partition owned → this worker's epoch there (epochs.py)
        self.newest_fences: dict[int, int] = {}  # partition → newest owner fence applied (the memory store's)
        self.generation: int | None = None  # the consumer generation of the last assignment
        self.written: set[int] = set()  # partitions this worker wrote since it last had a whole generation
        self.doubtful: set[int] = set()  # partitions whose local state may hold a lost generation's writes
        self.last_written: dict[int, int] = {}  # partition owned → offset of this worker's last write there
        self.fenced: str | None = None  # why this worker is found fenced (until its next assignment)
        self.sending = asyncio.Lock()  # a round of writes and its check, never across a rebalance's fences

    def send_changelog(
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: CodecArg | None = None,
        value_serializer: CodecArg | None = None,
    ) -> ChangelogWrite:
        if partition is None:  # Faust gives the current event's partition; our tables never repartition
            raise RuntimeError(f"table {self.name}: a write outside an event's partition")
        topic = self.changelog_topic
        encoded_key = topic.prepare_key(key, key_serializer or self.key_serializer)[0]
        encoded_value = topic.prepare_value(value, value_serializer or self.value_serializer)[0]
        write = ChangelogWrite(partition, encoded_key, encoded_value)
        self.unsent.append(write)
        return write

    def _new_store_by_url(self, url: Any) -> Any:
        """Faust's store, opened with the worker's shared RocksDB memory budget (`store_memory`)."""
        store = super()._new_store_by_url(url)
        memory = getattr(self.app, "store_memory", None)
        if isinstance(store, RocksDBStore) and memory is not None:
            store.rocksdb_options = memory.options(store.rocksdb_options)
        return store

    def entry(self, partition: int, key: str) -> str | None:
        """One entry of one partition, read straight from its store.

        What `table.get(key)` returns inside an event of `partition`, without Faust's per-key path
        (event lookup, sensors, serializer registry: ~80 µs a read in the bench profiles)."""
        store = self.data
        if not isinstance(store, RocksDBStore):
            return store.data.get(key)  # memory store: one dict for every partition, str as Faust restores it
        value = store._db_for_partition(partition).get(key.encode())
        return None if value is None else value.decode()

    def write_entries(self, partition: int, changes: Mapping[str, str | None]) -> None:
        """Store entries of one partition in the order given (None deletes): what `table[key] = value`
        does key by key, once per batch. The local write is one atomic RocksDB batch; the changelog
        records (the same keys, values and partition Faust would send) wait for `changelog_sent`."""
        writes = [ChangelogWrite(partition, k.encode(), None if v is None else v.encode()) for k, v in changes.items()]
        self.unsent.extend(writes)
        store = self.data
        if isinstance(store, RocksDBStore):
            if writes:
                store._db_for_partition(partition).write(write_batch(writes))
            for write in writes:
                if write.value is not None:
                    store._key_index[write.key] = partition
        else:  # memory store: one dict for every partition, keys and values str as Faust's recovery
            for key, value in changes.items():  # writes them (it deserializes changelog records)
                if value is None:
                    store.data.pop(key, None)
                else:
                    store.data[key] = value
        count = getattr(self.app.monitor, "count_table_writes", None)
        if count is not None:
            deleted = sum(1 for write in writes if write.value is None)
            count(self, len(writes) - deleted, deleted)

    def partition_items(self, partition: int) -> Iterator[tuple[str, str]]:
        """The entries stored for one partition (every partition's, for the memory store: a copy, so
        that a reader may give the loop back to writers while it iterates)."""
        store = self.data
        if not isinstance(store, RocksDBStore):
            yield from list(store.data.items())
            return
        for key, value in store._visible_items(store._db_for_partition(partition)):
            if key != NEWEST_FENCE_KEY:
                yield key.decode(), value.decode()

    async def send_unsent(self) -> None:
        """Send the writes kept so far, await the broker's acknowledgements, persist the offsets.

        Each partition's records go as record batches built here (aiokafka's `create_batch`), in
        write order: a few µs per record instead of a `send` call with its own future (~25 µs). A
        worker found fenced sends nothing until its next assignment (`Fenced`)."""
        async with self.sending:
            if self.fenced is not None:
                self._drop_unsent()
                raise Fenced(self.fenced)
            writes, self.unsent = self.unsent, []
            runs = await self._send_runs(writes)
            newest: dict[int, int] = {}
            for partition, _, last in runs:
                newest[partition] = max(newest.get(partition, -1), last)
            topic = self.changelog_topic.get_topic_name()
            for partition, offset in newest.items():
                self.data.set_persisted_offset(TP(topic, partition), offset)
            await self._check_owned(topic, runs)

    async def _send_runs(self, writes: list[ChangelogWrite]) -> list[tuple[int, int, int]]:
        """Send `writes` as record batches; returns each batch's partition, first and last offset."""
        topic = self.changelog_topic.get_topic_name()
        client = self.app.producer._ensure_producer()  # noqa: SLF001 - Faust's aiokafka producer
        by_partition: dict[int, list[ChangelogWrite]] = {}
        for write in writes:
            by_partition.setdefault(write.partition, []).append(write)
        pending: list[tuple[int, int, Any]] = []  # partition, records, the batch's future
        for partition, run in by_partition.items():
            batch, count, headers = client.create_batch(), 0, epoch_headers(self.epochs.get(partition))
            self.written.add(partition)
            for write in run:
                # A full batch refuses the record; an empty one takes any (as aiokafka's own `send` does).
                if batch.append(key=write.key, value=write.value, timestamp=None, headers=headers) is None:
                    pending.append((partition, count, await client.send_batch(batch, topic, partition=partition)))
                    batch, count = client.create_batch(), 0
                    batch.append(key=write.key, value=write.value, timestamp=None, headers=headers)
                count += 1
            pending.append((partition, count, await client.send_batch(batch, topic, partition=partition)))
        sent = await asyncio.gather(*(future for _, _, future in pending))
        # meta.offset: the batch's first record's
        return [(partition, meta.offset, meta.offset + count - 1) for (partition, count, _), meta in zip(pending, sent, strict=True)]

    async def _check_owned(self, topic: str, runs: list[tuple[int, int, int]]) -> None:
        """Records of others between this worker's writes to a partition it owns (before a round's
        first batch, or between two of its batches): standbys' fences after a rebalance, or another
        owner's fence. Found, this worker is fenced: every table of the worker sends nothing, and the
        stages publish nothing, until its next assignment (`Fenced`)."""
        gaps = gaps_between(self.last_written, runs)
        if gaps and await owner_fence_between(self.app, topic, gaps):
            reason = f"table {self.name}: another owner's fence in changelog offsets {gaps}"
            fence_worker(self.app, reason)
            raise Fenced(reason)

    async def on_rebalance(
        self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP], generation_id: int = 0
    ) -> None:
        changelog = self.changelog_topic.get_topic_name()
        standbys = self.app.assignor.assigned_standbys()
        actives = [tp.partition for tp in sorted(assigned) if tp.topic == changelog and tp not in standbys]
        self._note_generation(generation_id)
        fences: dict[int, int] = {}
        async with self.sending:  # a round in flight (a timer's) ends in the epochs it began in
            self.epochs, self.last_written = {}, {}  # every rebalance revokes every partition: they begin again below
            self._drop_unsent()  # a batch cut short (fenced): never sent under the new epochs
            self.fenced = None
            for tp in sorted(tp for tp in assigned if tp.topic == changelog):
                fences[tp.partition] = await self.write_fence(tp.partition, owner=tp.partition in actives)
            self.epochs = {p: fences[p] for p in actives}
            self.last_written = dict(self.epochs)
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)  # opens the stores
        if isinstance(self.data, RocksDBStore):  # the memory store starts empty and Faust fills it
            self._drop_state_ahead_of_changelog(changelog, fences)
            self._drop_doubtful_state(changelog, set(fences))
            try:
                restored = await rebuild(self.app, self.data, changelog, actives)
            except Exception:  # a speed-up only: whatever it did not apply, Faust's recovery reads
                log.exception("table %s: raw-consumer restore failed; Faust's recovery restores the rest", self.name)
            else:
                self.restored.records += restored.records
                self.restored.seconds += restored.seconds

    async def write_fence(self, partition: int, owner: bool = False) -> int:
        """Append the fence to one changelog partition; returns its offset, the partition's last. An
        owner's fence starts its epoch there (epochs.py)."""
        key = self.changelog_topic.prepare_key(FENCE_KEY, self.key_serializer)[0]
        headers = owner_fence_headers() if owner else None
        pending = await self.app.producer.send(
            self.changelog_topic.get_topic_name(), key, None, partition, None, headers
        )
        return int((await pending).offset)  # alone in its batch: the next send waits for this one

    def _drop_unsent(self) -> None:
        """Writes kept for a batch that will not finish are not sent: their partitions' local state
        holds them, so it is rebuilt from the changelog when the worker is given them."""
        self.doubtful |= {write.partition for write in self.unsent}
        self.unsent = []

    def _note_generation(self, generation_id: int) -> None:
        """A consumer generation skipped means this worker was out of the group meanwhile (cut off for
        longer than the session timeout): what it wrote may have reached the changelog after another
        owner's records, and its local state of those partitions is not to be trusted any more."""
        if self.generation is not None and generation_id > self.generation + 1:
            log.warning("table %s: consumer generation %d after %d: this worker was out of the group; the"
                        " partitions it wrote are rebuilt from the changelog when it is given them",
                        self.name, generation_id, self.generation)
            self._distrust_written()
        self.generation = generation_id

    def _distrust_written(self) -> None:
        """Every partition this worker wrote is rebuilt from the changelog when it is given it again."""
        self.doubtful |= self.written
        self.written = set()

    def _drop_doubtful_state(self, changelog: str, partitions: set[int]) -> None:
        for partition in sorted(self.doubtful & partitions):
            self._empty(partition)
            self.doubtful.discard(partition)

    def apply_changelog_batch(self, batch: Iterable[EventT]) -> None:
        """Faust's recovery and standbys apply the changelog here: a zombie's records are left out
        (epochs.py); the newest owner fence is kept with the partition's state."""
        kept: list[EventT] = []
        newest: dict[int, int] = {}
        for event in batch:
            message = event.message
            partition = message.partition
            was = newest[partition] if partition in newest else self._newest_fence(partition)
            take, newest[partition] = admitted(message.offset, message.headers, was)
            if take:
                kept.append(event)
        super().apply_changelog_batch(kept)
        for partition, fence in newest.items():
            self._keep_newest_fence(partition, fence)

    def _newest_fence(self, partition: int) -> int:
        store = self.data
        if isinstance(store, RocksDBStore):
            return stored_fence(store._db_for_partition(partition).get(NEWEST_FENCE_KEY))
        return self.newest_fences.get(partition, stored_fence(None))

    def _keep_newest_fence(self, partition: int, fence: int) -> None:
        store = self.data
        if isinstance(store, RocksDBStore):
            store._db_for_partition(partition).put(NEWEST_FENCE_KEY, str(fence).encode())
        else:
            self.newest_fences[partition] = fence

    def _drop_state_ahead_of_changelog(self, changelog: str, fences: Mapping[int, int]) -> None:
        """Empty a partition's local store whose offset is at or past the fence just appended: it was
        written against another log (a cluster rebuilt, its topics recreated). Every offset the store
        persists is of a record already in the log, and the fence came after all of them, so a
        consistent store is always behind it. The partition is then rebuilt from its changelog, as
        Kafka Streams does with a task whose checkpoint is out of its changelog's range."""
        store = self.data
        assert isinstance(store, RocksDBStore)
        for partition, fence in sorted(fences.items()):
            persisted = store.persisted_offset(TP(changelog, partition))
            if persisted is None or persisted < fence:
                continue
            log.warning(
                "table %s partition %d: local state at offset %d is ahead of its changelog (its end is %d):"
                " another log wrote it; rebuilt from the changelog",
                self.name, partition, persisted, fence + 1,
            )
            self._empty(partition)

    def _empty(self, partition: int) -> None:
        """Forget a partition's local state: every key, the persisted offset and newest fence too, so it
        is rebuilt from its changelog's start."""
        store = self.data
        assert isinstance(store, RocksDBStore)
        store._db_for_partition(partition).delete_range(b"", b"\xff" * 8)
        for key in [k for k, p in store._key_index.items() if p == partition]:
            del store._key_index[key]


def fenced_table(app: faust.App, name: str, **kwargs: Any) -> FencedTable:
    """Register a FencedTable the way `app.Table` registers a plain one, with the app's store options.

    A fresh dict per table: Faust's RocksDB store pops keys from the one it is given. Keys and values
    are str, stored and sent as UTF-8 (raw), which `write_entries` and `entry` rely on."""
    options = dict(getattr(app, "table_options", None) or {}) if str(app.conf.store).startswith("rocksdb") else {}
    table = FencedTable(app, name=name, beacon=app.tables.beacon, options=options or None, **kwargs)
    app.tables.add(table)
    return table


async def changelog_sent(app: faust.App) -> None:
    """Send every table write made so far and wait until the broker has acknowledged them.

    Every stage awaits this before Faust may acknowledge the batch: a crash after a commit whose
    state never reached the changelog would lose state whose input is never read again. (Faust's
    own `producer.flush()`, which it awaits before committing, is no such guarantee: it gives up
    after 0.1 s without a send.)
    """
    for table in app.tables.values():
        if isinstance(table, FencedTable) and table.unsent:
            await table.send_unsent()


def fence_worker(app: faust.App, reason: str) -> None:
    """This worker lost partitions without knowing: until its next assignment no table sends and no
    stage publishes (`fenced_reason`), and what each table wrote is rebuilt from the changelog when
    it is given the partition again. A batch after the one that found the fence would otherwise go
    out: its writes follow the fenced ones, with no gap left to find (the network partition test's
    forked versions)."""
    for table in app.tables.values():
        if isinstance(table, FencedTable):
            table.fenced = reason
            table._drop_unsent()
            table._distrust_written()


def fenced_reason(app: faust.App) -> str | None:
    """Why this worker is fenced, or None: stages check it before they publish."""
    for table in app.tables.values():
        if isinstance(table, FencedTable) and table.fenced is not None:
            return table.fenced
    return None


def unsent_writes(app: faust.App) -> int:
    """Table writes stored locally whose changelog records were never sent (a batch cut off by a stop),
    and partitions whose local state may hold a lost generation's writes (`_note_generation`).

    A worker that stops with any is not a clean stop: its local state is ahead of the changelog."""
    return sum(len(t.unsent) + len(t.doubtful) for t in app.tables.values() if isinstance(t, FencedTable))
