"""The alert engine's held incidents, indexed so that one incident costs the same however many are held.

Evaluating a rule over every held summary made the cost of an incident grow with the state. Here each
question a rule asks is answered from the part of the state it is about, kept up to date as incidents
arrive, change and are forgotten:
  - every live incident sorted by `at` (and per sector, and per sector and rung): window counts,
    the newest incidents of a window, and "anything this high in the look-back?" by bisection;
  - per sector, the incidents within the violation hold and the escalation candidates within the
    escalation hold, in `seen_at` order (the watermark when a version arrived, so insertion keeps them
    sorted and a hold running out drops a prefix);
  - the incidents within the surge hold with their window counts, and which of them met the
    threshold: an incident's counts change only when another arrives or goes within 25 h before it;
  - the fragility figures of the recent window as running totals, slid along as the watermark moves.
Times are whole microseconds since the epoch (exact: datetimes carry microseconds), so every boundary
(half-open windows, strict holds) is decided exactly as `conditions.py` and `fragility.py` decide it.
Only the summaries are state; all of this is rebuilt from them (`put`, in `seen_at` order).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import Counter, OrderedDict, deque
from datetime import UTC, datetime, timedelta

from schemas.incident import Severity
from services.alert.conditions import MAX_IDS, TOP_RUNG, AlertRules, Met, escalation_ceiling, surge_measure
from services.alert.fragility import HOUR, Tally
from services.alert.recent import IncidentSummary

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
RUNGS = tuple(Severity)
Entry = tuple[int, int, IncidentSummary]  # seen_at, at (microseconds), the summary
Timed = tuple[int, str, int, IncidentSummary]  # at, incident id, seen_at, the summary: sorts by time
Candidate = tuple[int, int, IncidentSummary, int]  # seen_at, at, summary, its escalation ceiling
# seen_at, at, summary; incidents in its surge window, in the baseline before it; mean; threshold
Watched = list


def micros(t: datetime) -> int:
    """Whole microseconds since the epoch: exact, and cheap to compare and bisect."""
    return (t - EPOCH) // MICROSECOND


def span(d: timedelta) -> int:
    return d // MICROSECOND


HOUR_SPAN = span(HOUR)


def prune(held: OrderedDict[str, Entry] | OrderedDict[str, Candidate], since: int) -> list[str]:
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

    __slots__ = ("timeline", "rungs", "held", "candidates", "escalates")

    def __init__(self) -> None:
        self.timeline: list[Timed] = []
        self.rungs: dict[int, list[int]] = {}  # sorted `at`s per rung
        self.held: OrderedDict[str, Entry] = OrderedDict()  # within the violation hold (pruned lazily)
        self.candidates: OrderedDict[str, Candidate] = OrderedDict()  # could escalate, within its hold
        self.escalates: dict[str, bool] = {}  # candidates known to escalate or not, until that changes

    def unsettle(self, at: int, rung: int, lookback: int) -> None:
        """An incident at `at` of this rung arrived or went: forget what it may have changed, which is
        whether the candidates after it (within the look-back) and lower than it escalate."""
        candidates = self.candidates
        for incident_id in [
            i for i in self.escalates if at < candidates[i][1] < at + lookback and rung > candidates[i][3]
        ]:
            del self.escalates[incident_id]


class HeldIncidents:
    """The latest summary of every incident the engine holds (tombstones too), with its indexes."""

    def __init__(self, rules: AlertRules) -> None:
        self.rules = rules
        self.summaries: dict[str, IncidentSummary] = {}
        self.arrivals: deque[Entry] = deque()  # every version, merged ones too: for forgetting
        self.timeline: list[Timed] = []  # live incidents
        self.times: list[int] = []  # their `at`s
        self.sectors: dict[str, Sector] = {}
        self.watched: OrderedDict[str, Watched] = OrderedDict()  # within the surge hold (pruned lazily)
        self.watched_at: list[tuple[int, str]] = []  # the same, by `at`
        self.met: dict[str, Watched] = {}  # those of them that met the surge threshold
        self.window = RecentWindow()
        self._surge_window = span(rules.surge_window)
        self._surge_baseline = span(rules.surge_baseline)
        self._surge_reach = span(rules.surge_window + rules.surge_baseline)
        self._lookback = span(rules.escalation_lookback)
        self._recent = span(rules.fragility.recent_window)
        self._baseline = span(rules.fragility.baseline_window)

    def put(self, summary: IncidentSummary) -> IncidentSummary | None:
        """Hold this summary instead of the incident's previous one (returned). `seen_at` never goes back."""
        old = self.summaries.get(summary.incident_id)
        if old is not None:
            self._unindex(old)
        self.summaries[summary.incident_id] = summary
        entry = (micros(summary.seen_at), micros(summary.at), summary)
        self.arrivals.append(entry)
        if not summary.merged:
            self._index(entry)
        return old

    def forget(self, cutoff: datetime) -> list[IncidentSummary]:
        """Drop (and return) the incidents whose latest version arrived at or before `cutoff`."""
        limit = micros(cutoff)
        gone = []
        while self.arrivals and self.arrivals[0][0] <= limit:
            s = self.arrivals.popleft()[2]
            if self.summaries.get(s.incident_id) is s:
                del self.summaries[s.incident_id]
                self._unindex(s)
                gone.append(s)
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

    def escalating(self, sector: str, since: int) -> list[IncidentSummary]:
        """Live incidents in the sector that arrived after `since` and climbed the ladder (see
        `conditions.escalations`: above the sector's highest in the look-back before each)."""
        found = self.sectors.get(sector)
        if found is None:
            return []
        for incident_id in prune(found.candidates, since):
            found.escalates.pop(incident_id, None)
        lookback, known = self._lookback, found.escalates
        out = []
        for incident_id, (_, at, x, ceiling) in found.candidates.items():
            escalates = known.get(incident_id)
            if escalates is None:
                escalates = ceiling >= TOP_RUNG or not self._reached(found, ceiling, at - lookback, at)
                known[incident_id] = escalates
            if escalates:
                out.append(x)
        return out

    def surging(self, since: int) -> list[Met]:
        """Live incidents that arrived after `since` and met the surge threshold at their `at`."""
        for incident_id, e in self._pruned(since):
            self.met.pop(incident_id, None)
            del self.watched_at[bisect_left(self.watched_at, (e[1], incident_id))]
        return [(e[2], e[3], e[5], e[6]) for e in self.met.values()]

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

    def tally(self, as_of: datetime) -> Tally:
        """The fragility windows ending at `as_of`, which is at or after every held incident's `at`."""
        end = micros(as_of)
        recent_start = end - self._recent
        self._slide(recent_start)
        w = self.window
        last = bisect_right(self.times, end)
        return Tally(
            recent=w.count,
            baseline=self.count(recent_start - self._baseline, recent_start),
            last_hour=self.count(max(recent_start, end - HOUR_SPAN), end),
            rung=w.top(),
            killed=w.killed,
            injured=w.injured,
            reciprocal=w.reciprocal,
            sectors=sorted(w.sectors),
            last=self.timeline[last - 1][3].at if last else None,
        )

    # --- upkeep -------------------------------------------------------------------------------------

    def _reached(self, sector: Sector, above: int, start: int, end: int) -> bool:
        """Did an incident above rung `above` have its `at` in the open window (start, end)?"""
        for rung, times in sector.rungs.items():
            if rung > above and bisect_right(times, start) < bisect_left(times, end):
                return True
        return False

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

    def _pruned(self, since: int) -> list[tuple[str, Watched]]:
        gone = []
        while self.watched:
            incident_id, first = next(iter(self.watched.items()))
            if first[0] > since:
                break
            self.watched.popitem(last=False)
            gone.append((incident_id, first))
        return gone

    def _index(self, entry: Entry) -> None:
        seen, at, s = entry
        timed = (at, s.incident_id, seen, s)
        ceiling, lookback = escalation_ceiling(s, self.rules), self._lookback
        for name in s.alert_sectors:
            sector = self.sectors.get(name)
            if sector is None:
                sector = self.sectors[name] = Sector()
            insort(sector.timeline, timed)
            insort(sector.rungs.setdefault(int(s.severity), []), at)
            sector.unsettle(at, s.severity, lookback)
            sector.held[s.incident_id] = entry
            if ceiling is not None:
                sector.candidates[s.incident_id] = (seen, at, s, ceiling)
        i = bisect_left(self.timeline, timed)
        self.timeline.insert(i, timed)
        self.times.insert(i, at)
        if at > self.window.start:
            self.window.add(s, 1)
        self._recount(at, 1, s.incident_id)
        start = at - self._surge_window
        watched = [seen, at, s, self.count(start, at), 0, 0.0, 0.0]
        self.watched[s.incident_id] = watched
        insort(self.watched_at, (at, s.incident_id))
        self._rebase(watched, self.count(start - self._surge_baseline, start))

    def _unindex(self, s: IncidentSummary) -> None:
        if s.merged:
            return
        at, incident_id = micros(s.at), s.incident_id
        for name in s.alert_sectors:
            sector = self.sectors[name]
            del sector.timeline[bisect_left(sector.timeline, (at, incident_id))]
            times = sector.rungs[int(s.severity)]
            del times[bisect_left(times, at)]
            sector.held.pop(incident_id, None)
            sector.escalates.pop(incident_id, None)
            sector.candidates.pop(incident_id, None)
            sector.unsettle(at, s.severity, self._lookback)
            if not sector.timeline:
                del self.sectors[name]
        i = bisect_left(self.timeline, (at, incident_id))
        del self.timeline[i], self.times[i]
        if at > self.window.start:
            self.window.add(s, -1)
        if self.watched.pop(incident_id, None) is not None:
            del self.watched_at[bisect_left(self.watched_at, (at, incident_id))]
        self.met.pop(incident_id, None)
        self._recount(at, -1, incident_id)

    def _recount(self, at: int, change: int, incident_id: str) -> None:
        """An incident at `at` arrived (+1) or went (-1): it is in the surge window or the baseline of
        the watched incidents at or up to 25 h after it."""
        reach, window = at + self._surge_reach, at + self._surge_window
        lo, hi = bisect_left(self.watched_at, (at, "")), bisect_left(self.watched_at, (reach, ""))
        for _, affected in self.watched_at[lo:hi]:
            if affected == incident_id:
                continue
            e = self.watched[affected]
            if e[1] < window:
                e[3] += change
                self._judge(e)
            else:
                self._rebase(e, e[4] + change)

    def _rebase(self, e: Watched, before: int) -> None:
        _, e[5], e[6] = surge_measure(0, before, self.rules)
        e[4] = before
        self._judge(e)

    def _judge(self, e: Watched) -> None:
        if e[3] >= e[6]:
            self.met[e[2].incident_id] = e
        else:
            self.met.pop(e[2].incident_id, None)
