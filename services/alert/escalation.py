"""Which of one sector's incidents climbed the weapon ladder, kept as incidents come and go.

`conditions.escalations` says when an incident escalates: its rung is `escalation_rung` or above
(ceiling `TOP_RUNG`), or nothing in its sector above its ceiling (`escalation_ceiling`) had its `at`
in the open look-back window (at - lookback, at). Asking that of every candidate at every evaluation
made the cost of an incident grow with the sector's incidents; here the answer is kept per candidate
and changes only where it must:
  - per ceiling, the sorted `at`s of the sector's incidents above it (the *blockers*). A blocker
    arriving at `p` blocks exactly the candidates after it that nothing else blocked: those in
    (p, p + lookback) no earlier than the previous blocker + lookback and no later than the next
    blocker. Every candidate in that range flips, and no other; a blocker leaving frees the same range.
  - the candidates within the escalation hold, in `seen` order (a hold running out drops a prefix),
    and per ceiling by `at` (to find a range);
  - of those that escalate: how many, how many per rung, by `at` (the newest, for the annotation) and
    by arrival (the last one's `seen`, for the hold).
Times are whole microseconds (see `held.py`), so the open and half-open windows are decided exactly.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import OrderedDict
from datetime import datetime

from schemas.incident import Severity
from services.alert.arrival import pop_arrived
from services.alert.conditions import TOP_RUNG
from services.alert.recent import IncidentSummary


def around(times: list[int], i: int) -> tuple[int | None, int | None]:
    """The blockers either side of position i (None: there is none)."""
    return times[i - 1] if i else None, times[i] if i < len(times) else None


class Candidate:
    """An incident of the sector that could escalate, within the escalation hold."""

    __slots__ = ("seen", "seq", "at", "summary", "ceiling", "escalates")

    def __init__(self, seen: int, seq: int, at: int, summary: IncidentSummary, ceiling: int) -> None:
        self.seen, self.seq, self.at, self.summary, self.ceiling = seen, seq, at, summary, ceiling
        self.escalates = False


class SectorEscalations:
    """One sector's blockers per ceiling, its escalation candidates, and which of them escalate."""

    __slots__ = ("lookback", "blockers", "waiting", "candidates", "rungs", "by_at", "by_arrival", "sequence")

    def __init__(self, lookback: int, ceilings: tuple[int, ...]) -> None:
        self.lookback = lookback
        self.blockers: dict[int, list[int]] = {c: [] for c in ceilings}  # `at`s of incidents above c
        self.waiting: dict[int, list[tuple[int, str]]] = {c: [] for c in ceilings}  # candidates of c by at
        self.candidates: OrderedDict[str, Candidate] = OrderedDict()  # in `seen` order
        self.rungs = [0] * (TOP_RUNG + 1)  # escalating candidates per rung
        self.by_at: list[tuple[int, str]] = []  # escalating candidates by (at, id)
        self.by_arrival: list[int] = []  # their sequence numbers, sorted
        self.sequence: dict[int, Candidate] = {}  # escalating candidates by sequence number

    # --- the sector's incidents ---------------------------------------------------------------------

    def arrived(self, at: int, rung: int) -> None:
        """An incident of this rung at `at` is now held in the sector: it blocks candidates after it."""
        for ceiling, times in self.blockers.items():
            if rung > ceiling:
                i = bisect_left(times, at)
                if i == len(times) or times[i] != at:  # another blocker at `at` already blocks all it could
                    self._flip(ceiling, at, *around(times, i), False)
                times.insert(i, at)

    def left(self, at: int, rung: int) -> None:
        """An incident of this rung at `at` left the sector: what it alone blocked escalates now."""
        for ceiling, times in self.blockers.items():
            if rung > ceiling:
                i = bisect_left(times, at)
                del times[i]
                if i == len(times) or times[i] != at:
                    self._flip(ceiling, at, *around(times, i), True)

    def _flip(self, ceiling: int, at: int, before: int | None, after: int | None, escalates: bool) -> None:
        """The candidates of `ceiling` whose only possible blocker is one at `at`, between blockers
        `before` and `after`: all of them now escalate (or no longer do)."""
        lo = at + 1 if before is None else max(at + 1, before + self.lookback)
        hi = at + self.lookback - 1 if after is None else min(at + self.lookback - 1, after)
        if lo > hi:
            return
        waiting = self.waiting[ceiling]
        for k in range(bisect_left(waiting, (lo,)), bisect_left(waiting, (hi + 1,))):
            self._set(self.candidates[waiting[k][1]], escalates)

    # --- the candidates -----------------------------------------------------------------------------

    def add(self, candidate: Candidate) -> None:
        """A candidate (arrived after every other, so last in `seen` order)."""
        incident_id, ceiling = candidate.summary.incident_id, candidate.ceiling
        self.candidates[incident_id] = candidate
        if ceiling >= TOP_RUNG:
            self._set(candidate, True)
            return
        insort(self.waiting[ceiling], (candidate.at, incident_id))
        times = self.blockers[ceiling]
        i = bisect_left(times, candidate.at)
        self._set(candidate, i == 0 or times[i - 1] <= candidate.at - self.lookback)

    def replace(self, candidate: Candidate) -> None:
        """A new version of a candidate at the same `at` and rung: it escalates as it did, and is now
        the last to arrive."""
        incident_id = candidate.summary.incident_id
        old = self.candidates.pop(incident_id, None)
        if old is None:  # its hold had run out
            self.add(candidate)
            return
        self.candidates[incident_id] = candidate
        candidate.escalates = old.escalates
        if old.escalates:
            del self.by_arrival[bisect_left(self.by_arrival, old.seq)]
            del self.sequence[old.seq]
            self.by_arrival.append(candidate.seq)  # the highest yet
            self.sequence[candidate.seq] = candidate

    def remove(self, incident_id: str) -> None:
        candidate = self.candidates.pop(incident_id, None)
        if candidate is not None:
            self._drop(candidate)

    def prune(self, since: int) -> None:
        """Drop the candidates whose version arrived at or before `since` (they come first)."""
        for candidate in pop_arrived(self.candidates, since):
            self._drop(candidate)

    def _drop(self, candidate: Candidate) -> None:
        self._set(candidate, False)
        if candidate.ceiling < TOP_RUNG:
            waiting = self.waiting[candidate.ceiling]
            del waiting[bisect_left(waiting, (candidate.at, candidate.summary.incident_id))]

    def _set(self, candidate: Candidate, escalates: bool) -> None:
        if candidate.escalates == escalates:
            return
        candidate.escalates = escalates
        key, rung = (candidate.at, candidate.summary.incident_id), int(candidate.summary.severity)
        if escalates:
            self.rungs[rung] += 1
            insort(self.by_at, key)
            insort(self.by_arrival, candidate.seq)
            self.sequence[candidate.seq] = candidate
        else:
            self.rungs[rung] -= 1
            del self.by_at[bisect_left(self.by_at, key)]
            del self.by_arrival[bisect_left(self.by_arrival, candidate.seq)]
            del self.sequence[candidate.seq]

    # --- what the Escalation rule asks ----------------------------------------------------------------

    def count(self) -> int:
        return len(self.by_arrival)

    def last_seen(self) -> datetime:
        """When the latest version of an escalating candidate arrived (there is one)."""
        return self.sequence[self.by_arrival[-1]].summary.seen_at

    def top(self) -> Severity:
        """The highest rung among the escalating candidates (there is one)."""
        return Severity(max(r for r, n in enumerate(self.rungs) if n))

    def newest(self, wanted: int) -> list[IncidentSummary]:
        """The `wanted` escalating candidates latest in `at`, and any tied in `at` with the last of them
        (ordering by id among equal times is left to the annotation)."""
        by_at = self.by_at
        k = max(0, len(by_at) - wanted)
        while k > 0 and by_at[k - 1][0] == by_at[k][0]:
            k -= 1
        return [self.candidates[incident_id].summary for _, incident_id in by_at[k:]]
