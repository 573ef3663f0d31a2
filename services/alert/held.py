"""The alert engine's held incidents, indexed so that one incident costs the same however many are held.

Evaluating a rule over every held summary made the cost of an incident grow with the state. Here each
question a rule asks is answered from the part of the state it is about, kept up to date as incidents
arrive, change and are forgotten:
  - every live incident sorted by `at` (and per sector): window counts and the newest incidents of a
    window, by bisection;
  - per sector, the incidents within the violation hold in `seen_at` order (the watermark when a
    version arrived, so insertion keeps them sorted and a hold running out drops a prefix), and which
    escalation candidates escalate (`escalation.py`: a blocker arriving or leaving flips exactly the
    candidates it alone blocks);
  - the incidents within the surge hold with their window and baseline counts and which of them met
    the threshold (`surge.py`: counts shifted a block at a time, decided again only near the threshold);
  - the fragility figures of the recent window as running totals, slid along as the watermark moves.
A version that keeps its incident's `at`, rung and sectors (about half of them) only takes the old
version's places (`_kept`). Times are whole microseconds since the epoch (exact: datetimes carry
microseconds), so every boundary (half-open windows, strict holds) is decided exactly as
`conditions.py` and `fragility.py` decide it. Only the summaries are state; all of this is rebuilt
from them (`put`, in `seen_at` order).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import Counter, OrderedDict, deque
from datetime import UTC, datetime, timedelta

from schemas.incident import Severity
from services.alert.conditions import MAX_IDS, AlertRules, escalation_ceiling, surge_measure
from services.alert.escalation import Candidate, SectorEscalations
from services.alert.fragility import HOUR, Tally
from services.alert.recent import IncidentSummary
from services.alert.surge import SurgeWatch, Watched

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
RUNGS = tuple(Severity)
Entry = tuple[int, int, IncidentSummary]  # seen_at, at (microseconds), the summary
Timed = tuple[int, str, int, IncidentSummary]  # at, incident id, seen_at, the summary: sorts by time
# recent, baseline, last hour, top rung, killed, injured, reciprocal, sectors, last: `Tally`'s fields
Figures = tuple[int, int, int, Severity | None, int, int, int, list[str], datetime | None]


def micros(t: datetime) -> int:
    """Whole microseconds since the epoch: exact, and cheap to compare and bisect."""
    return (t - EPOCH) // MICROSECOND


def span(d: timedelta) -> int:
    return d // MICROSECOND


HOUR_SPAN = span(HOUR)


def prune(held: OrderedDict[str, Entry], since: int) -> list[str]:
    """Drop (and name) the entries whose version arrived at or before `since` (they come first)."""
    gone = []
    while held:
        incident_id, first = next(iter(held.items()))
        if first[0] > since:
            break
        held.popitem(last=False)
        gone.append(incident_id)
    return gone


def newest(timeline: list[Timed], since: int, wanted: int) -> list[IncidentSummary]:
    """Walking back from the latest `at`: the first `wanted` that arrived after `since`, and any tied
    in `at` with the last of them (so that ordering by id among equal times is left to `_ids`)."""
    found: list[IncidentSummary] = []
    edge = None
    for at, _, seen, s in reversed(timeline):
        if edge is not None and at != edge:
            break
        if seen > since:
            found.append(s)
            if len(found) == wanted:
                edge = at
    return found


class RecentWindow:
    """Running fragility figures over the live incidents whose `at` is after `start`."""

    def __init__(self) -> None:
        self.start = -(1 << 62)  # nothing has left yet
        self.count = self.killed = self.injured = self.reciprocal = 0
        self.rungs = dict.fromkeys(RUNGS, 0)
        self.sectors: Counter[str] = Counter()

    def add(self, s: IncidentSummary, sign: int) -> None:
        self.count += sign
        self.killed += sign * s.killed
        self.injured += sign * s.injured
        self.reciprocal += sign * s.reciprocal
        self.rungs[s.severity] += sign
        for name in s.sectors:
            self.sectors[name] += sign
            if not self.sectors[name]:
                del self.sectors[name]

    def top(self) -> Severity | None:
        return next((r for r in reversed(RUNGS) if self.rungs[r]), None)


class Sector:
    """One sector's live incidents (by its alert-sector name)."""

    __slots__ = ("timeline", "held", "escalations")

    def __init__(self, lookback: int, ceilings: tuple[int, ...]) -> None:
        self.timeline: list[Timed] = []
        self.held: OrderedDict[str, Entry] = OrderedDict()  # within the violation hold (pruned lazily)
        self.escalations = SectorEscalations(lookback, ceilings)


class HeldIncidents:
    """The latest summary of every incident the engine holds (tombstones too), with its indexes."""

    def __init__(self, rules: AlertRules) -> None:
        self.rules = rules
        self.summaries: dict[str, IncidentSummary] = {}
        self.arrivals: deque[Entry] = deque()  # every version, merged ones too: for forgetting
        self.timeline: list[Timed] = []  # live incidents
        self.times: list[int] = []  # their `at`s
        self.ats: dict[str, int] = {}  # the same, by incident id
        self.sectors: dict[str, Sector] = {}
        self.surge = SurgeWatch(rules, self.times)
        self.window = RecentWindow()
        self.arrived = 0  # versions indexed so far: orders the candidates and watched incidents
        self._lookback = span(rules.escalation_lookback)
        self._ceilings = ceilings(rules)
        self._recent = span(rules.fragility.recent_window)
        self._baseline = span(rules.fragility.baseline_window)

    def put(self, summary: IncidentSummary, seen: int | None = None) -> IncidentSummary | None:
        """Hold this summary instead of the incident's previous one (returned). `seen_at` never goes back;
        `seen` is it in microseconds, when the caller knows."""
        old = self.summaries.get(summary.incident_id)
        entry = (micros(summary.seen_at) if seen is None else seen, micros(summary.at), summary)
        self.arrivals.append(entry)
        if old is not None and self._kept(old, entry):
            self.summaries[summary.incident_id] = summary
            return old
        changes: list[tuple[int, int]] = []  # `at`s that an incident arrived at (+1) or left (-1)
        if old is not None:
            self._unindex(old, changes)
        self.summaries[summary.incident_id] = summary
        if not summary.merged:
            self._index(entry, changes)
        if changes:
            self.surge.recount(changes)
        if not summary.merged:
            seen, at, _ = entry
            self.surge.add(Watched(seen, self.arrived, at, summary.incident_id, summary))
        return old

    def forget(self, limit: int) -> list[IncidentSummary]:
        """Drop (and return) the incidents whose latest version arrived at or before `limit` (µs)."""
        gone = []
        changes: list[tuple[int, int]] = []
        while self.arrivals and self.arrivals[0][0] <= limit:
            s = self.arrivals.popleft()[2]
            if self.summaries.get(s.incident_id) is s:
                del self.summaries[s.incident_id]
                self._unindex(s, changes)
                gone.append(s)
        if changes:
            self.surge.recount(changes)
        return gone

    # --- what the rules ask -----------------------------------------------------------------------

    def violation(self, sector: str, since: int) -> tuple[int, datetime] | None:
        """Live incidents in the sector that arrived after `since`: how many, and when the last did.
        None when there are none."""
        found = self.sectors.get(sector)
        if found is None:
            return None
        prune(found.held, since)
        if not found.held:
            return None
        return len(found.held), next(reversed(found.held.values()))[2].seen_at

    def newest(self, sector: str, since: int, count: int) -> list[IncidentSummary]:
        """The newest (at least `MAX_IDS`, or all) of the `count` live incidents in the sector that
        arrived after `since`."""
        return newest(self.sectors[sector].timeline, since, min(count, MAX_IDS))

    def escalating(self, sector: str, since: int) -> SectorEscalations | None:
        """The sector's escalations among the live incidents that arrived after `since` (see
        `conditions.escalations`: above the sector's highest in the look-back before each); None
        when none of them escalates."""
        found = self.sectors.get(sector)
        if found is None:
            return None
        escalations = found.escalations
        escalations.prune(since)
        return escalations if escalations.count() else None

    def surging(self, since: int) -> tuple[int, float, float, datetime] | None:
        """Of the live incidents that arrived after `since` and met the surge threshold at their `at`:
        the highest (count, at, id)'s count, baseline mean and threshold, and when the last of them
        arrived. None when none did."""
        self.surge.prune(since)
        found = self.surge.best()
        if found is None:
            return None
        count, before, last = found
        _, mean, threshold = surge_measure(count, before, self.rules)
        return count, mean, threshold, last

    def newest_between(self, start: int, end: int) -> list[IncidentSummary]:
        """The newest (at least `MAX_IDS`, ties included) live incidents with `at` in (start, end]."""
        lo, hi = bisect_right(self.times, start), bisect_right(self.times, end)
        k = max(lo, hi - MAX_IDS)
        while k > lo and self.times[k - 1] == self.times[k]:
            k -= 1
        return [t[3] for t in self.timeline[k:hi]]

    def count(self, start: int, end: int) -> int:
        """Live incidents with `at` in (start, end]."""
        return bisect_right(self.times, end) - bisect_right(self.times, start)

    def tally(self, as_of: datetime, end: int | None = None) -> Tally:
        """The fragility windows ending at `as_of` (`end` in microseconds, when the caller knows), which
        is at or after every held incident's `at`."""
        return Tally(*self.figures(micros(as_of) if end is None else end))

    def figures(self, end: int) -> Figures:
        """`tally`'s figures as a plain tuple, in its order: cheap to make and to compare."""
        recent_start = end - self._recent
        self._slide(recent_start)
        w = self.window
        last = bisect_right(self.times, end)
        return (
            w.count,
            self.count(recent_start - self._baseline, recent_start),
            self.count(max(recent_start, end - HOUR_SPAN), end),
            w.top(),
            w.killed,
            w.injured,
            w.reciprocal,
            sorted(w.sectors),
            self.timeline[last - 1][3].at if last else None,
        )

    # --- upkeep -------------------------------------------------------------------------------------

    def _slide(self, start: int) -> None:
        """Move the recent window's start on (or rebuild it, should `as_of` ever go back)."""
        w = self.window
        if start < w.start:
            self.window = w = RecentWindow()
            for t in self.timeline:
                w.add(t[3], 1)
        lo, hi = bisect_right(self.times, w.start), bisect_right(self.times, start)
        for t in self.timeline[lo:hi]:
            w.add(t[3], -1)
        w.start = start

    def _kept(self, old: IncidentSummary, entry: Entry) -> bool:
        """A new version at the same time, rung and sectors (about half of them): it takes the old
        one's places, and nothing that counts incidents or rungs by time changes. False: not so."""
        seen, at, s = entry
        incident_id = s.incident_id
        if old.merged or s.merged or self.ats.get(incident_id) != at:
            return False
        if old.severity != s.severity or old.alert_sectors != s.alert_sectors:
            return False
        self.arrived += 1
        timed = (at, incident_id, seen, s)
        self.timeline[bisect_left(self.timeline, (at, incident_id))] = timed
        ceiling = escalation_ceiling(s, self.rules)
        for name in s.alert_sectors:
            sector = self.sectors[name]
            sector.timeline[bisect_left(sector.timeline, (at, incident_id))] = timed
            sector.held.pop(incident_id, None)  # (pruned once its hold ran out)
            sector.held[incident_id] = entry
            if ceiling is not None:  # its blockers are as they were: only its place in arrival order moves
                sector.escalations.replace(Candidate(seen, self.arrived, at, s, ceiling))
        if at > self.window.start:
            self.window.add(old, -1)
            self.window.add(s, 1)
        self.surge.replace(Watched(seen, self.arrived, at, incident_id, s))
        return True

    def _index(self, entry: Entry, changes: list[tuple[int, int]]) -> None:
        seen, at, s = entry
        self.arrived += 1
        timed = (at, s.incident_id, seen, s)
        rung, ceiling = int(s.severity), escalation_ceiling(s, self.rules)
        for name in s.alert_sectors:
            sector = self.sectors.get(name)
            if sector is None:
                sector = self.sectors[name] = Sector(self._lookback, self._ceilings)
            insort(sector.timeline, timed)
            sector.held[s.incident_id] = entry
            sector.escalations.arrived(at, rung)
            if ceiling is not None:
                sector.escalations.add(Candidate(seen, self.arrived, at, s, ceiling))
        i = bisect_left(self.timeline, timed)
        self.timeline.insert(i, timed)
        self.times.insert(i, at)
        self.ats[s.incident_id] = at
        if at > self.window.start:
            self.window.add(s, 1)
        changes.append((at, 1))

    def _unindex(self, s: IncidentSummary, changes: list[tuple[int, int]]) -> None:
        if s.merged:
            return
        incident_id = s.incident_id
        at = self.ats.pop(incident_id)
        for name in s.alert_sectors:
            sector = self.sectors[name]
            del sector.timeline[bisect_left(sector.timeline, (at, incident_id))]
            sector.held.pop(incident_id, None)
            sector.escalations.remove(incident_id)
            sector.escalations.left(at, int(s.severity))
            if not sector.timeline:
                del self.sectors[name]
        i = bisect_left(self.timeline, (at, incident_id))
        del self.timeline[i], self.times[i]
        if at > self.window.start:
            self.window.add(s, -1)
        self.surge.remove(incident_id)
        changes.append((at, -1))


def ceilings(rules: AlertRules) -> tuple[int, ...]:
    """The escalation ceilings below `TOP_RUNG` that some rung has (see `escalation_ceiling`)."""
    found = {int(r) - rules.escalation_rungs for r in RUNGS if r < rules.escalation_rung}
    return tuple(sorted(c for c in found if c >= Severity.LIGHT))
