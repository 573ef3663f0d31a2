"""Low watermarks: how far event time has come across a stage's input partitions (docs/event-time.md).

Each ingest partition's progress for a ceasefire is the newest `observed_at` it has carried; a report
that comes after newer ones is ordered at that progress (`ordered_at`), so no report is ever ordered
before the progress its partition announced ahead of it. A stage's low watermark is the minimum over
its input partitions (as Flink takes the minimum over input channels): a report ordered before it can
no longer arrive, except from a partition that went idle and came back. An idle partition (caught up,
silent about the ceasefire for the idle interval) holds nobody back; when all are idle, nothing is in
flight and the watermark is the newest progress of any. Pure: no Kafka, no clock read here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from schemas.ingest import Mark


def low_watermark(marks: Mapping[str, Mark], upstreams: int) -> Mark | None:
    """The low watermark over upstream partitions "0"…"upstreams-1"; None while one that is not idle
    has said nothing yet (time cannot move past what it may still send)."""
    seen = [marks.get(str(partition)) for partition in range(upstreams)]
    active: list[datetime] = []
    for mark in seen:
        if mark is None:
            return None
        if not mark.idle:
            if mark.at is None:
                return None
            active.append(mark.at)
    if active:
        return Mark(at=min(active))
    times = [mark.at for mark in seen if mark is not None and mark.at is not None]
    return Mark(at=max(times) if times else None, idle=True)


def later(mark: Mark | None, previous: Mark | None) -> Mark | None:
    """A watermark never goes back: `mark`, unless it is behind `previous` (then `previous`'s time,
    with `mark`'s idleness)."""
    if mark is None or previous is None or previous.at is None:
        return mark
    if mark.at is None or mark.at < previous.at:
        return Mark(at=previous.at, idle=mark.idle)
    return mark


class PartitionProgress:
    """Ingest's side: per owned ingest partition and ceasefire, the newest `observed_at` so far and
    when (processing time, seconds) it last carried a report of that ceasefire."""

    def __init__(self, ceasefires: Iterable[str], idle_seconds: float) -> None:
        self.ceasefires = sorted(ceasefires)
        self.idle_seconds = idle_seconds
        self.newest: dict[int, dict[str, datetime]] = {}
        self.heard: dict[int, dict[str, float]] = {}

    def take(self, partition: int, now: float) -> None:
        """Start following a partition (assigned, or first read): silence is counted from now."""
        if partition not in self.heard:
            self.newest[partition] = {}
            self.heard[partition] = dict.fromkeys(self.ceasefires, now)

    def drop(self, partition: int) -> None:
        self.newest.pop(partition, None)
        self.heard.pop(partition, None)

    def order(self, partition: int, ceasefire_id: str, observed_at: datetime, now: float) -> datetime:
        """The report's `ordered_at`: its `observed_at`, or its partition's progress if that is newer."""
        self.take(partition, now)
        newest = self.newest[partition]
        before = newest.get(ceasefire_id)
        self.heard[partition][ceasefire_id] = now
        if before is None or observed_at > before:
            newest[ceasefire_id] = observed_at
            return observed_at
        return before

    def marks(self, partition: int, caught_up: bool, now: float) -> dict[str, Mark]:
        """The partition's mark for every ceasefire of the registry."""
        self.take(partition, now)
        newest, heard = self.newest[partition], self.heard[partition]
        return {
            c: Mark(at=newest.get(c), idle=caught_up and now - heard.get(c, now) >= self.idle_seconds)
            for c in self.ceasefires
        }
