"""Reports held until event time has passed them, then released in event-time order (docs/event-time.md).

One ceasefire's: the marks of every dedup partition (each its low watermark over the ingest partitions)
and the reports not yet released. A report is released once the low watermark over the dedup partitions
is past its `ordered_at` (at it, when every partition is idle: nothing is in flight), in the order
(`ordered_at`, `observed_at`, source, report id, revision). No report can arrive ordered before a watermark its
partitions announced after it, so the correlator takes the same reports in the same order however the
partitions were interleaved, batched or restarted. Persisted as entries under `order\\x1f`.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from datetime import UTC, datetime

import orjson
from pydantic import TypeAdapter

from schemas.ingest import UPSTREAM_MARKS, Mark
from schemas.report import AcceptedReport
from services.watermark import later, low_watermark

QUIET = "quiet"  # the upstream name of correlate's own marks for a quiet ceasefire (docs/event-time.md)
ORDER_PREFIX = "order\x1f"
MARKS = ORDER_PREFIX + "marks"
PENDING = ORDER_PREFIX + "pending\x1f"
Key = tuple[str, str, int]  # (source, report_id, revision): two revisions of a report are two reports to order


def _key(report: AcceptedReport) -> Key:
    return (report.source, report.report_id, report.revision)


def _position(report: AcceptedReport) -> Position:
    return (report.ordered, report.observed_at, report.source, report.report_id, report.revision)


_CHUNK = TypeAdapter(list[AcceptedReport])
CHUNK_REPORTS = 256  # reports per stored entry (~200 KB): a backlog's held reports never make one huge record
Position = tuple[datetime, datetime, str, str, int]


class EventOrder:
    """Persisted as the marks and, per batch, entries of the reports it left held ("chunks", 256 each),
    deleted when the last of them is released: one write a batch, not two a report. A stored report is
    kept in memory as its chunk's JSON (~0.8 KB, a model is ~5 KB) and decoded when released: a backlog
    holds tens of thousands."""

    def __init__(self, upstreams: int, persisted: Iterable[tuple[str, str]] = ()) -> None:
        self.upstreams = upstreams
        self.marks: dict[str, Mark] = {}
        self.low: Mark | None = None
        self._heap: list[tuple[Position, Key]] = []
        self._models: dict[Key, AcceptedReport] = {}  # held reports not stored yet, or decoded again
        self._unstored: list[Key] = []  # held since the last take_changes: stored then, if still held
        self._chunks: dict[int, int] = {}  # stored chunk → its reports still held
        self._chunk_of: dict[Key, int] = {}  # a held report's stored chunk
        self._chunk_text: dict[int, bytes] = {}
        self._next_chunk = 0
        self._marks_changed = False
        self._changes: dict[str, str | None] = {}
        for key, text in persisted:
            if key == MARKS:
                self.marks = UPSTREAM_MARKS.validate_json(text)
            elif key.startswith(PENDING):
                self._restore_chunk(int(key[len(PENDING) :]), text)
        self.low = self._low()

    def _restore_chunk(self, chunk: int, text: str) -> None:
        self._next_chunk = max(self._next_chunk, chunk + 1)
        self._chunk_text[chunk] = text.encode()
        for doc in orjson.loads(text):
            observed = datetime.fromisoformat(doc["observed_at"])
            ordered = datetime.fromisoformat(doc["ordered_at"]) if doc.get("ordered_at") else observed
            identity = (doc["source"], doc["report_id"], doc.get("revision", 1))
            if identity not in self._chunk_of and identity not in self._models:
                heapq.heappush(self._heap, ((ordered, observed, *identity), identity))
                self._chunk_of[identity] = chunk
                self._chunks[chunk] = self._chunks.get(chunk, 0) + 1

    def __len__(self) -> int:
        return len(self._heap)

    def hold(self, report: AcceptedReport) -> None:
        """Keep a report until the watermark passes it (a report held already is kept once)."""
        identity = _key(report)
        if identity in self._models or identity in self._chunk_of:
            return
        self._models[identity] = report
        self._unstored.append(identity)
        heapq.heappush(self._heap, (_position(report), identity))

    def mark(self, upstream: str, mark: Mark) -> None:
        """A dedup partition's low watermark moved, or (`QUIET`) event time on a quiet ceasefire."""
        self.marks[upstream] = mark
        self._marks_changed = True  # written once, by take_changes
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
            _, identity = heapq.heappop(self._heap)
            chunk = self._chunk_of.get(identity)
            if chunk is not None and identity not in self._models:
                self._decode(chunk)
            self._chunk_of.pop(identity, None)
            released.append(self._models.pop(identity))
            if chunk is not None:  # else released within its batch: never stored
                self._chunks[chunk] -= 1
                if not self._chunks[chunk]:
                    del self._chunks[chunk]
                    self._changes[f"{PENDING}{chunk:012d}"] = None
        return released

    def _decode(self, chunk: int) -> None:
        """The chunk's reports still held, as models again (its JSON is dropped)."""
        for report in _CHUNK.validate_json(self._chunk_text.pop(chunk)):
            if self._chunk_of.get(_key(report)) == chunk:  # not released yet
                self._models.setdefault(_key(report), report)

    def take_changes(self) -> dict[str, str | None]:
        """Entries to write: the marks, the reports still held that are not stored yet, the deletions
        of those released."""
        if self._marks_changed:
            self._changes[MARKS] = UPSTREAM_MARKS.dump_json(dict(sorted(self.marks.items()))).decode()
            self._marks_changed = False
        still = [self._models[identity] for identity in self._unstored if identity in self._models]
        self._unstored.clear()
        for start in range(0, len(still), CHUNK_REPORTS):
            piece = still[start : start + CHUNK_REPORTS]
            chunk, self._next_chunk = self._next_chunk, self._next_chunk + 1
            text = self._chunk_text[chunk] = _CHUNK.dump_json(piece)
            self._changes[f"{PENDING}{chunk:012d}"] = text.decode()
            self._chunks[chunk] = len(piece)
            for report in piece:
                self._chunk_of[_key(report)] = chunk
                del self._models[_key(report)]
        changes, self._changes = self._changes, {}
        return changes
