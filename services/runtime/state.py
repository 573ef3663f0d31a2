"""The stages' table state, as the stages see it: one partition as a mapping, where a key lands, which
partitions this worker owns, and the store step of the batch protocol (services/runtime/stage.py).

Ours; the table underneath (`fenced_table`: the fence, the batched write path and the changelog sends)
is a workaround of the embedded broker's and Faust's costs and lives in services/runtime/fixes/tables.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any

import faust
from aiokafka.partitioner import murmur2

from services.runtime.fixes.tables import FencedTable, changelog_sent, fenced_table, unsent_writes

__all__ = ["FencedTable", "PartitionEntries", "changelog_sent", "fenced_table", "key_partition", "owned_partitions", "unsent_writes"]


class PartitionEntries(MutableMapping[str, str]):
    """One partition of a FencedTable as a `StateStore` (services/store.py) and a plain mapping: reads
    and writes go through the table's per-partition fast paths; `apply` is one batch."""

    def __init__(self, table: FencedTable, partition: int) -> None:
        self.table, self.partition = table, partition

    def __getitem__(self, key: str) -> str:
        value = self.table.entry(self.partition, key)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self.table.entry(self.partition, key)
        return default if value is None else value

    def __setitem__(self, key: str, value: str) -> None:
        self.table.write_entries(self.partition, {key: value})

    def __delitem__(self, key: str) -> None:
        self.table.write_entries(self.partition, {key: None})

    def update(self, changes: Mapping[str, str] | Iterable[tuple[str, str]] = (), /, **more: str) -> None:
        self.table.write_entries(self.partition, {**dict(changes), **more})

    def scan(self, prefix: str = "") -> Iterator[tuple[str, str]]:
        """A `StateStore`'s scan (services/store.py): this partition's entries under `prefix`."""
        return ((key, value) for key, value in self.table.partition_items(self.partition) if key.startswith(prefix))

    def apply(self, changes: Mapping[str, str | None]) -> None:
        """A `StateStore`'s write: one batch, in order, None deletes."""
        self.table.write_entries(self.partition, changes)

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self.table.partition_items(self.partition))

    def items(self) -> Iterator[tuple[str, str]]:  # type: ignore[override]
        return self.table.partition_items(self.partition)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def key_partition(key: str, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives `key`: where a keyed record lands."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def owned_partitions(app: faust.App, topic: str) -> set[int]:
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic}
