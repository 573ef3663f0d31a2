"""Changelog records of a worker that lost its partitions without knowing it are not restored.

A worker cut off from the broker (a network partition) for longer than the session timeout loses its
partitions to another worker but still holds records it had queued; its producer sends them when the
link heals, after the new owner's. Kafka fences such a *zombie* with transactions (producer epochs);
the embedded broker has none (docs/broker.md), so the stages fence their state themselves:

- a worker given a changelog partition as its owner appends the fence (tables.py) with a header that
  marks it as an owner's; the fence's offset is the worker's *epoch* for the partition;
- every changelog record carries its writer's epoch in a header;
- reading a changelog in order (a restore, a standby), a record whose epoch is below the newest owner's
  fence already read was written by a worker that no longer owned the partition: it is not applied.

Records without an epoch (written before epochs existed, or by a worker not given the partition as
owner) are applied as before. Pure; no framework.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

EPOCH_HEADER = "ceasefire-epoch"
OWNER_HEADER = "ceasefire-owner"
# Where a partition's RocksDB keeps the newest owner fence applied: a restore resumes from it.
NEWEST_FENCE_KEY = b"__ceasefire\x00fence__"
NO_FENCE = -1


def epoch_headers(epoch: int | None) -> list[tuple[str, bytes]]:
    """The headers of a changelog record written in `epoch` (none outside an owner's epoch)."""
    return [] if epoch is None else [(EPOCH_HEADER, str(epoch).encode())]


def owner_fence_headers() -> list[tuple[str, bytes]]:
    return [(OWNER_HEADER, b"1")]


Headers = Iterable[tuple[str, bytes]] | Mapping[str, Any] | None  # aiokafka's tuples, or Faust's


def is_owner_fence(headers: Headers) -> bool:
    return OWNER_HEADER in dict(headers or ())


def admitted(offset: int, headers: Headers, newest: int) -> tuple[bool, int]:
    """Whether the record at `offset` is applied, and the newest owner fence once it is read."""
    found = dict(headers or ())
    if OWNER_HEADER in found:
        return True, max(newest, offset)
    epoch = found.get(EPOCH_HEADER)
    if epoch is not None and int(epoch) < newest:
        return False, newest  # its writer's epoch ended at a later owner's fence: a zombie's record
    return True, newest


def stored_fence(value: bytes | None) -> int:
    return NO_FENCE if value is None else int(value)


def gaps_between(last_written: dict[int, int], runs: Iterable[tuple[int, int, int]]) -> dict[int, tuple[int, int]]:
    """The offsets [first, end) of each owned partition where records of others lie between this
    worker's writes: before a round's first record batch, or between two of its batches (a batch sent
    before a cut can land before another owner's fence, the next one after it). `runs`: the round's
    record batches (partition, first offset, last offset); `last_written` (partition owned → offset of
    the last write) moves to each partition's newest."""
    gaps: dict[int, tuple[int, int]] = {}
    for partition, first, last in sorted(runs):
        if partition not in last_written:
            continue
        expected = last_written[partition] + 1
        if first > expected:
            gaps[partition] = (gaps.get(partition, (expected, first))[0], first)
        last_written[partition] = max(last, last_written[partition])
    return gaps
