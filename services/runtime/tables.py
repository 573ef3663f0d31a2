"""Faust tables that survive the embedded broker's wrong `ListOffsets(latest)` answer.

Tansu answers "first offset of the last batch + 1" for a partition's end, and Faust restores a table
up to that answer: the newest changelog batch can be skipped. When the last batch holds one record
the answer is exact, so before each restore we append, alone and awaited, a tombstone for a reserved
key (the *fence*) to every changelog partition this worker was just given. On Apache Kafka the fence
is harmless: one tombstone per partition per rebalance.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Iterator
from typing import Any

import faust
from aiokafka.partitioner import murmur2
from faust.streams import _current_event
from faust.types import TP, CodecArg, EventT, FutureMessage

FENCE_KEY = "~fence"


class FencedTable(faust.Table):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unacknowledged: list[FutureMessage] = []  # changelog records of the batch in hand

    def send_changelog(
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: CodecArg | None = None,
        value_serializer: CodecArg | None = None,
    ) -> FutureMessage:
        sent = super().send_changelog(partition, key, value, key_serializer, value_serializer)
        self.unacknowledged.append(sent)
        return sent

    async def on_rebalance(
        self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP], generation_id: int = 0
    ) -> None:
        changelog = self.changelog_topic.get_topic_name()
        for tp in sorted(tp for tp in assigned if tp.topic == changelog):
            await self.write_fence(tp.partition)
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    async def write_fence(self, partition: int) -> None:
        key = self.changelog_topic.prepare_key(FENCE_KEY, self.key_serializer)[0]
        pending = await self.app.producer.send(
            self.changelog_topic.get_topic_name(), key, None, partition, None, None
        )
        await pending  # alone in its batch: the next send waits for this one's acknowledgement


def fenced_table(app: faust.App, name: str, **kwargs: Any) -> FencedTable:
    """Register a FencedTable the way `app.Table` registers a plain one, with the app's store options.

    A fresh dict per table: Faust's RocksDB store pops keys from the one it is given."""
    options = dict(getattr(app, "table_options", None) or {}) if str(app.conf.store).startswith("rocksdb") else {}
    table = FencedTable(app, name=name, beacon=app.tables.beacon, options=options or None, **kwargs)
    app.tables.add(table)
    return table


@contextlib.contextmanager
def writes_for(event: EventT) -> Iterator[None]:
    """Table writes in this block go to `event`'s partition.

    Faust picks the changelog partition (and the RocksDB partition store) from the *current* event;
    after `take_events` that is the last event of the batch, whatever partition the write belongs to.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def key_partition(key: str, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives `key`: where a keyed record lands."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def owned_partitions(app: faust.App, topic: str) -> set[int]:
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic}


def scopes(table: faust.Table, separator: str) -> set[str]:
    """The scope prefixes (ceasefire ids) of the keys this worker holds."""
    return {key.split(separator, 1)[0] for key in table}


async def changelog_sent(app: faust.App) -> None:
    """Wait until the broker has acknowledged every table write made so far.

    Faust sends changelog records with `send_soon` into its own producer buffer, and its
    `producer.flush()` (also what it awaits before committing offsets) is no guarantee: it gives up
    after 0.1 s without a send, and returns while the last record taken from the buffer may not be
    handed to the client yet. A crash after such a commit would lose state whose input is never
    read again. So each write's own future is awaited: it resolves on the broker's acknowledgement.
    Every stage awaits this before Faust may acknowledge the batch.
    """
    for table in app.tables.values():
        if isinstance(table, FencedTable) and table.unacknowledged:
            pending, table.unacknowledged = table.unacknowledged, []
            await asyncio.gather(*pending)
