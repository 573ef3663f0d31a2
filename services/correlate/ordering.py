"""Reports held until event time has passed them, then released in event-time order (docs/event-time.md).

One ceasefire's: the marks of every dedup partition (each its low watermark over the ingest partitions)
and the reports not yet released. A report is released once the low watermark over the dedup partitions
is past its `ordered_at` (at it, when every partition is idle: nothing is in flight), in the order
(`ordered_at`, `observed_at`, source, report id). No report can arrive ordered before a watermark its
partitions announced after it, so the correlator takes the same reports in the same order however the
partitions were interleaved, batched or restarted. Persisted as entries under `order\\x1f`.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from datetime import UTC, datetime

import orjson

from schemas.ingest import Mark
from schemas.report import AcceptedReport
from services.watermark import later, low_watermark

QUIET = "quiet"  # the upstream name of correlate's own marks for a quiet ceasefire (docs/event-time.md)
ORDER_PREFIX = "order\x1f"
MARKS = ORDER_PREFIX + "marks"
PENDING = ORDER_PREFIX + "pending\x1f"
Key = tuple[str, str]


def _position(report: AcceptedReport) -> tuple[datetime, datetime, str, str]:
    return (report.ordered, report.observed_at, report.source, report.report_id)


class EventOrder:
    def __init__(self, upstreams: int, persisted: Iterable[tuple[str, str]] = ()) -> None:
        self.upstreams = upstreams
        self.marks: dict[str, Mark] = {}
        self.low: Mark | None = None
        self._heap: list[tuple[tuple[datetime, datetime, str, str], AcceptedReport]] = []
        self._held: set[Key] = set()
        self._changes: dict[str, str | None] = {}
        for key, text in persisted:
            if key == MARKS:
                self.marks = {p: Mark.model_validate(m) for p, m in orjson.loads(text).items()}
            elif key.startswith(PENDING):
                self.hold(AcceptedReport.model_validate_json(text), stored=True)
        self.low = self._low()

    def __len__(self) -> int:
        return len(self._heap)

    def hold(self, report: AcceptedReport, stored: bool = False) -> None:
        """Keep a report until the watermark passes it (a report held already is kept once)."""
        if report.identity in self._held:
            return
        self._held.add(report.identity)
        heapq.heappush(self._heap, (_position(report), report))
        if not stored:
            self._changes[self._key(report)] = report.model_dump_json()

    def mark(self, upstream: str, mark: Mark) -> None:
        """A dedup partition's low watermark moved, or (`QUIET`) event time on a quiet ceasefire."""
        self.marks[upstream] = mark
        self._changes[MARKS] = orjson.dumps({p: m.model_dump(mode="json") for p, m in sorted(self.marks.items())}).decode()
        self.low = later(self._low(), self.low)

    def _low(self) -> Mark | None:
        """The low watermark over the dedup partitions; when all are idle (nothing in flight), moved on
        by a quiet mark ahead of it."""
        low, quiet = low_watermark(self.marks, self.upstreams), self.marks.get(QUIET)
        ahead = quiet is not None and quiet.at is not None and (low is None or low.at is None or quiet.at > low.at)
        if low is not None and low.idle and ahead:
            return Mark(at=quiet.at if quiet is not None else None, idle=True)
        return low

    @property
    def quiet(self) -> bool:
        """Every upstream partition idle and nothing held: the ceasefire has gone silent."""
        return not self._heap and self.low is not None and self.low.idle and self.low.at is not None

    def release(self) -> list[AcceptedReport]:
        """The held reports event time has passed, in event-time order (with no upstreams to wait
        for, every report held: the order is then the arrival's)."""
        low = self.low
        if self.upstreams == 0:
            low = Mark(at=datetime.max.replace(tzinfo=UTC), idle=True)
        if low is None or low.at is None:
            return []
        until, idle = low.at, low.idle
        released = []
        while self._heap and (self._heap[0][0][0] < until or (idle and self._heap[0][0][0] <= until)):
            _, report = heapq.heappop(self._heap)
            self._held.discard(report.identity)
            self._changes[self._key(report)] = None
            released.append(report)
        return released

    def take_changes(self) -> dict[str, str | None]:
        changes, self._changes = self._changes, {}
        return changes

    @staticmethod
    def _key(report: AcceptedReport) -> str:
        return f"{PENDING}{report.source}\x1f{report.report_id}"
