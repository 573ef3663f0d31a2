"""The incidents within the surge hold and which of them met the surge threshold, as incidents come and go.

`conditions.surge`: an incident met the threshold when its window count (live incidents with `at` in
(at - window, at]) is at least `surge_measure`'s threshold for its baseline count (those in
(at - window - baseline, at - window]). One incident arriving or leaving at `p` changes the window
count of every watched incident in [p, p + window) and the baseline of every one in
[p + window, p + window + baseline): when incidents arrive out of event-time order, that is most of
them, and updating each one made an incident cost as much as the incidents watched.

So the watched incidents are kept sorted by (`at`, id) in blocks of a few dozen. A change that covers
a whole block is recorded once for it (`dc`, `db`: added to every count in it), and only the few
incidents at the ends of a changed range are updated one by one (`_nudge`). A block also keeps the
lowest margin (count - threshold) of its incidents that met the threshold and the highest of those
that did not; the threshold rises by at most `slope` per incident of baseline, so while db stays
within the bounds those margins allow (`_bound`) nobody in the block changed sides, and its best and
latest stay right. A block near the threshold is decided again entry by entry (`_rebuild`), exactly
as `surge_measure` decides (the same arithmetic, memoised per baseline count): the margins only say
when to look. The blocks' bests and latests go into two heaps, so the rule's answer is read off their
tops rather than off every block.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import OrderedDict
from datetime import datetime, timedelta
from heapq import heappop, heappush
from itertools import compress, count
from operator import not_, sub

from services.alert.arrival import pop_arrived
from services.alert.conditions import AlertRules, surge_measure
from services.alert.recent import IncidentSummary

SIZE = 48  # incidents per block: a block splits at twice this, merges into a neighbour below a quarter
SLACK = 1e-6  # far above the rounding error of a threshold, far below one incident
LOWEST = (-(1 << 62), "")
INF = float("inf")
MICROSECOND = timedelta(microseconds=1)
Key = tuple[int, str]  # at (microseconds), incident id


class Thresholds(dict[int, float]):
    """`surge_measure`'s threshold by baseline count, computed once each (and exactly as it does)."""

    def __init__(self, rules: AlertRules) -> None:
        super().__init__()
        self.rules = rules

    def __missing__(self, before: int) -> float:
        self[before] = found = surge_measure(0, before, self.rules)[2]
        return found


class Watched:
    """An incident within the surge hold: when its latest version arrived, and its summary."""

    __slots__ = ("seen", "seq", "at", "incident_id", "summary")

    def __init__(self, seen: int, seq: int, at: int, incident_id: str, summary: IncidentSummary) -> None:
        self.seen, self.seq, self.at, self.incident_id, self.summary = seen, seq, at, incident_id, summary


class Block:
    """Watched incidents consecutive in (at, id), their counts less `dc` and `db`, and what met."""

    __slots__ = (
        "keys", "entries", "seqs", "counts", "befores", "met", "dc", "db", "low", "high", "best", "latest",
        "alive", "noted", "noted_latest", "db_low", "db_high",
    )
    COLUMNS = ("keys", "entries", "seqs", "counts", "befores", "met")

    def __init__(self) -> None:
        self.keys: list[Key] = []
        self.entries: list[Watched] = []
        self.seqs: list[int] = []  # arrival order
        self.counts: list[int] = []  # window counts, less dc
        self.befores: list[int] = []  # baseline counts, less db
        self.met: list[bool] = []  # exact, at the counts plus dc and db
        self.dc = self.db = 0
        self.low = INF  # lowest margin (count - threshold) of those that met, at the counts held
        self.high = -INF  # highest margin of those that did not
        self.best: tuple[int, int, str] | None = None  # (count less dc, at, id) of the best that met
        self.latest: Watched | None = None  # the last to arrive of those that met
        self.alive = True  # False once merged away or emptied: its entries in the heaps are stale
        self.noted: tuple[int, int, str] | None = None  # the best (count with dc, at, id) and the latest
        self.noted_latest: Watched | None = None  # last put in the heaps
        self.db_low, self.db_high = -INF, INF  # nobody changes sides while db stays within (`_bound`)


class Descending(str):
    """An incident id that sorts backwards: the heap of bests is a min-heap of negated keys."""

    __slots__ = ()

    def __lt__(self, other: str) -> bool:
        return str.__gt__(self, other)


class SurgeWatch:
    """The watched incidents (within the surge hold) of one ceasefire, by time, in blocks."""

    def __init__(self, rules: AlertRules, times: list[int]) -> None:
        self.rules = rules
        self.times = times  # every live incident's `at`, sorted (kept by the caller)
        self.window = rules.surge_window // MICROSECOND
        self.baseline = rules.surge_baseline // MICROSECOND
        rate = rules.surge_factor * (rules.surge_window / rules.surge_baseline)
        self.slope = rate * (1 + 1e-9) + 1e-9  # the threshold's rise per incident of baseline, at most
        self.watched: OrderedDict[str, Watched] = OrderedDict()  # in arrival (`seen`) order
        self.blocks: list[Block] = []
        self.firsts: list[Key] = []  # block i holds the keys from firsts[i] up to firsts[i + 1]
        self.thresholds = Thresholds(rules)
        # every live block's best and latest as they were when they last changed (older entries are
        # dropped when they come to the top): the best of all without looking at every block
        self._bests: list[tuple[int, int, Descending, int, Block]] = []
        self._latests: list[tuple[int, int, Block]] = []
        self._pushed = count()

    # --- incidents in and out -------------------------------------------------------------------------

    def add(self, entry: Watched) -> None:
        """Watch an incident (the last to arrive); `times` already holds its `at`."""
        self.watched[entry.incident_id] = entry
        key, at, times = (entry.at, entry.incident_id), entry.at, self.times
        start = at - self.window
        before = bisect_right(times, start)
        count = bisect_right(times, at) - before
        before -= bisect_right(times, start - self.baseline)
        if not self.blocks:
            self.blocks.append(Block())
            self.firsts.append(LOWEST)
        i = max(0, bisect_right(self.firsts, key) - 1)
        block = self.blocks[i]
        j = bisect_left(block.keys, key)
        c, b = count - block.dc, before - block.db
        met = count >= self.thresholds[before]
        block.keys.insert(j, key)
        block.entries.insert(j, entry)
        block.seqs.insert(j, entry.seq)
        block.counts.insert(j, c)
        block.befores.insert(j, b)
        block.met.insert(j, met)
        if len(block.keys) > 2 * SIZE:
            self._split(i)
            return
        margin = c - self.thresholds[b]  # at the counts held: what `_check` bounds
        if met:
            block.low = min(block.low, margin)
            if block.best is None or (c, *key) > block.best:
                block.best = (c, *key)
            block.latest = entry
        else:
            block.high = max(block.high, margin)
        self._check(block)
        self._noted(block)

    def replace(self, entry: Watched) -> None:
        """A new version of a watched incident at the same `at`: the same counts, a later arrival."""
        old = self.watched.pop(entry.incident_id, None)
        if old is None:  # its hold had run out: watch it again
            self.add(entry)
            return
        self.watched[entry.incident_id] = entry
        key = (entry.at, entry.incident_id)
        block = self.blocks[max(0, bisect_right(self.firsts, key) - 1)]
        j = bisect_left(block.keys, key)
        block.entries[j], block.seqs[j] = entry, entry.seq
        if block.met[j]:  # the last to arrive of all
            block.latest = entry
            self._noted(block)

    def remove(self, incident_id: str) -> None:
        entry = self.watched.pop(incident_id, None)
        if entry is not None:
            self._drop(entry)

    def prune(self, since: int) -> None:
        """Stop watching the incidents whose version arrived at or before `since` (they come first)."""
        for entry in pop_arrived(self.watched, since):
            self._drop(entry)

    def recount(self, changes: list[tuple[int, int]]) -> None:
        """Incidents arrived (+1) or left (-1) at these `at`s (already in or out of `times`): move the
        watched incidents' counts, net of changes that cancel (a version moving its `at` a little)."""
        edges: dict[int, list[int]] = {}
        window, reach = self.window, self.window + self.baseline
        for at, sign in changes:
            for edge, dc, db in ((at, sign, 0), (at + window, -sign, sign), (at + reach, 0, -sign)):
                found = edges.setdefault(edge, [0, 0])
                found[0] += dc
                found[1] += db
        dc = db = 0
        last = None
        for edge in sorted(edges):  # ranges where the net change is the same
            if last is not None and (dc or db):
                self._shift(last, edge, dc, db)
            dc, db = dc + edges[edge][0], db + edges[edge][1]
            last = edge

    # --- what the ViolationSurge rule asks ------------------------------------------------------------

    def best(self) -> tuple[int, int, datetime] | None:
        """Of the watched incidents that met the threshold: the highest (count, at, id)'s count and
        baseline count, and when the last of them arrived. None when none did."""
        bests, latests = self._bests, self._latests
        while bests:
            count, at, incident_id, _, block = bests[0]
            found = block.best
            if block.alive and found == (-count - block.dc, -at, incident_id):
                break
            heappop(bests)
        while latests:
            seq, _, block = latests[0]
            if block.alive and block.latest is not None and block.latest.seq == -seq:
                break
            heappop(latests)
        if not bests or not latests:
            return None
        holder, latest = bests[0][4], latests[0][2].latest
        best = holder.best
        assert best is not None and latest is not None
        before = holder.befores[bisect_left(holder.keys, best[1:])] + holder.db
        return best[0] + holder.dc, before, latest.summary.seen_at

    # --- upkeep ---------------------------------------------------------------------------------------

    def _shift(self, lo: int, hi: int, dc: int, db: int) -> None:
        """Add dc to the window counts and db to the baseline counts of those with `at` in [lo, hi)."""
        blocks = self.blocks
        i = max(0, bisect_left(self.firsts, (lo,)) - 1)
        while i < len(blocks):
            block = blocks[i]
            keys = block.keys
            i += 1
            if keys[-1][0] < lo:
                continue
            if keys[0][0] >= hi:
                break
            if keys[0][0] >= lo and keys[-1][0] < hi:
                block.db += db
                if dc:
                    block.dc += dc
                    self._check(block)
                    self._noted(block)
                elif not block.db_low <= block.db <= block.db_high:
                    self._rebuild(block, recheck=True)
                continue
            n, j0, j1 = len(keys), bisect_left(keys, (lo,)), bisect_left(keys, (hi,))
            if (j0 > 0 and j1 < n) or j1 - j0 <= n // 2:  # nudge those in the range
                self._nudge(block, j0, j1, dc, db)
            else:  # most of the block, from one end: shift it all, then nudge the others back
                block.dc += dc
                block.db += db
                self._nudge(block, *((j1, n) if j0 == 0 else (0, j0)), -dc, -db)

    def _nudge(self, block: Block, j0: int, j1: int, dc: int, db: int) -> None:
        """Add dc and db to the counts of the block's incidents j0 to j1 (not all of them), deciding
        each afresh, and keep the block's summary (a whole rebuild costs more than a few of them)."""
        counts, befores, met, keys = block.counts, block.befores, block.met, block.keys
        entries = block.entries
        bdc, bdb, thresholds = block.dc, block.db, self.thresholds
        low, high, best, latest = block.low, block.high, block.best, block.latest
        stale = False  # the best or the latest may be someone else now
        for j in range(j0, j1):
            c, b = counts[j] + dc, befores[j] + db
            counts[j], befores[j] = c, b
            margin = c - thresholds[b]  # at the counts held
            now = margin >= 0 if not (bdc or bdb) else c + bdc >= thresholds[b + bdb]
            was, met[j] = met[j], now
            key = keys[j]
            if now:
                if margin < low:
                    low = margin
                if best is None or (c, *key) > best:
                    best = (c, *key)
                elif dc < 0 and best[1:] == key:
                    stale = True
                if not was and (latest is None or entries[j].seq > latest.seq):
                    latest = entries[j]
            else:
                if margin > high:
                    high = margin
                if was and ((best is not None and best[1:] == key) or latest is entries[j]):
                    stale = True
        block.low, block.high, block.best, block.latest = low, high, best, latest
        if stale:  # (and the others may have been shifted too: decide them all)
            self._rebuild(block, recheck=True)
        else:
            self._check(block)
            self._noted(block)

    def _bound(self, block: Block) -> None:
        """How far db may go, at the block's margins and dc, with nobody changing sides: the lowest
        margin of those that met, less `slope` per incident of baseline gained, stays above `SLACK`,
        and the highest of those that did not, plus `slope` per incident lost, stays below -SLACK."""
        room = block.low + block.dc - SLACK
        block.db_high = room / self.slope if room >= 0 else -INF
        room = -SLACK - block.high - block.dc
        block.db_low = -room / self.slope if room >= 0 else INF

    def _check(self, block: Block) -> None:
        """Rebuild the block if someone in it may have changed sides."""
        self._bound(block)
        if not block.db_low <= block.db <= block.db_high:
            self._rebuild(block, recheck=True)

    def _noted(self, block: Block) -> None:
        """The block's best, latest or dc may have changed: put them where `best` looks."""
        found, latest = block.best, block.latest
        if found is None:
            block.noted = block.noted_latest = None  # none met: its entries go stale (and are dropped)
            return
        key = (found[0] + block.dc, found[1], found[2])
        if key != block.noted:
            block.noted = key
            heappush(self._bests, (-key[0], -key[1], Descending(key[2]), next(self._pushed), block))
        if latest is not block.noted_latest:
            block.noted_latest = latest
            heappush(self._latests, (-latest.seq, next(self._pushed), block))  # type: ignore[union-attr]
        if len(self._bests) + len(self._latests) > 16 * len(self.blocks) + 256:  # mostly stale: start afresh
            self._bests, self._latests = [], []
            for live in self.blocks:
                live.noted = live.noted_latest = None
                self._noted(live)

    def _rebuild(self, block: Block, recheck: bool = False) -> None:
        """Fold dc and db into the counts, decide (if asked) who met the threshold, and summarise."""
        counts, befores, met = block.counts, block.befores, block.met
        if block.dc or block.db:
            dc, db = block.dc, block.db
            block.counts = counts = [c + dc for c in counts]
            block.befores = befores = [b + db for b in befores]
            block.dc = block.db = 0
        thresholds = self.thresholds
        margins = list(map(sub, counts, map(thresholds.__getitem__, befores)))
        if recheck:
            block.met = met = [margin >= 0 for margin in margins]  # count >= threshold, exactly
        block.low = min(compress(margins, met), default=INF)
        block.high = max(compress(margins, map(not_, met)), default=-INF)
        self._bound(block)
        self._crown(block)

    def _crown(self, block: Block, best: bool = True, latest: bool = True) -> None:
        """Find the block's best and (or) latest again (from counts that need not have dc folded in)."""
        met = block.met
        if best:
            found = max(compress(zip(block.counts, block.keys, strict=True), met), default=None)
            block.best = None if found is None else (found[0], *found[1])
        if latest:
            seq = max(compress(block.seqs, met), default=None)
            block.latest = None if seq is None else block.entries[block.seqs.index(seq)]
        self._noted(block)

    def _drop(self, entry: Watched) -> None:
        key = (entry.at, entry.incident_id)
        i = max(0, bisect_right(self.firsts, key) - 1)
        block = self.blocks[i]
        j = bisect_left(block.keys, key)
        for column in Block.COLUMNS:
            del getattr(block, column)[j]
        if not block.keys:
            block.alive = False
            del self.blocks[i], self.firsts[i]
            if i == 0 and self.firsts:
                self.firsts[0] = LOWEST
        elif len(block.keys) < SIZE // 4 and i + 1 < len(self.blocks):
            self._merge(i)
        elif block.best is not None and (block.best[1:] == key or block.latest is entry):
            # the margins held stay bounds: leaving cannot narrow them
            self._crown(block, best=block.best[1:] == key, latest=block.latest is entry)

    def _split(self, i: int) -> None:
        block, upper = self.blocks[i], Block()
        upper.dc, upper.db = block.dc, block.db
        half = len(block.keys) // 2
        for name in Block.COLUMNS:
            column = getattr(block, name)
            setattr(upper, name, column[half:])
            del column[half:]
        self.blocks.insert(i + 1, upper)
        self.firsts.insert(i + 1, upper.keys[0])
        self._rebuild(block)
        self._rebuild(upper)

    def _merge(self, i: int) -> None:
        block, upper = self.blocks[i], self.blocks[i + 1]
        self._rebuild(block)
        self._rebuild(upper)
        for name in Block.COLUMNS:
            getattr(block, name).extend(getattr(upper, name))
        upper.alive = False
        del self.blocks[i + 1], self.firsts[i + 1]
        if len(block.keys) > 2 * SIZE:
            self._split(i)
        else:
            self._rebuild(block)
