"""The stages' table state, as the stages see it: one partition as a mapping, where a key lands, which
partitions this worker owns, and the store step of the batch protocol (services/runtime/stage.py).

Ours; the table underneath (`fenced_table`: the fence, the batched write path and the changelog sends)
is a workaround of the embedded broker's and Faust's costs and lives in services/runtime/fixes/tables.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import faust
from aiokafka.partitioner import murmur2

from services.runtime.fixes.consumer import committed_offsets, positioned
from services.runtime.fixes.tables import (
    Fenced,
    FencedTable,
    changelog_sent,
    fenced_reason,
    fenced_table,
    unsent_writes,
)

__all__ = ["Fenced", "FencedTable", "PartitionEntries", "changelog_sent", "committed_offsets", "fenced_reason", "fenced_table", "positioned", "key_partition", "owned_partitions", "unsent_writes"]


class PartitionEntries:
    """One partition of a FencedTable as a `StateStore` (services/store.py): reads and writes go
    through the table's per-partition fast paths; `apply` is one batch."""

    def __init__(self, table: FencedTable, partition: int) -> None:
        self.table, self.partition = table, partition

    def get(self, key: str, default: str | None = None) -> str | None:
        value = self.table.entry(self.partition, key)
        return default if value is None else value

    def scan(self, prefix: str = "") -> Iterator[tuple[str, str]]:
        return ((key, value) for key, value in self.table.partition_items(self.partition) if key.startswith(prefix))

    def apply(self, changes: Mapping[str, str | None]) -> None:
        """One batch, in order, None deletes."""
        self.table.write_entries(self.partition, changes)


def key_partition(key: str, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives `key`: where a keyed record lands."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def owned_partitions(app: faust.App, topic: str) -> set[int]:
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic}
