"""The alert engine's incremental indexes equal what they index, recomputed from the held summaries.

`services/alert/escalation.py` keeps, per sector, which escalation candidates escalate, flipping only
the candidates a blocker arriving or leaving can change; `services/alert/surge.py` keeps the window
and baseline counts of the incidents within the surge hold in blocks with shared increments, and
decides who met the threshold only where a block's margins say someone may have changed sides. On
random streams (times on a quarter-hour grid, so that ties and window edges are common; blocks of
two, so that they split and merge all the time) every figure must equal the one recomputed from the
live summaries by the rules' own definitions (`conditions.py`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.incident import Severity
from services.alert import conditions as rule
from services.alert import surge
from services.alert.held import HeldIncidents, micros
from services.alert.recent import IncidentSummary, Timeline

START = datetime(2025, 5, 10, 12, 0, tzinfo=UTC)
RULES = rule.AlertRules(
    escalation_rungs=1,
    escalation_lookback=timedelta(hours=3),
    escalation_hold=timedelta(hours=2),
    surge_window=timedelta(hours=1),
    surge_baseline=timedelta(hours=4),
    surge_minimum=2,
    surge_factor=1.5,
    surge_hold=timedelta(hours=2),
)
SECTORS = [("Poonch",), ("Rajouri",), (), ("Poonch", "Uri")]


def quarter(k: int) -> datetime:
    return START + timedelta(minutes=15 * k)


def summary(
    n: int, version: int, at: int, seen: int, rung: int, sectors: int, merged: bool
) -> IncidentSummary:
    return IncidentSummary(
        incident_id=f"i{n}",
        version=version,
        merged=merged,
        at=quarter(at),
        seen_at=quarter(seen),
        severity=Severity(rung),
        sectors=SECTORS[sectors],
        reciprocal=False,
        killed=0,
        injured=0,
        report_count=1,
    )


def check_timelines(held: HeldIncidents) -> None:
    live = [s for s in held.summaries.values() if not s.merged]
    assert [t[3] for t in held.timeline] == sorted(live, key=lambda s: (s.at, s.incident_id))
    assert held.times == [micros(s.at) for s in sorted(live, key=lambda s: (s.at, s.incident_id))]
    assert set(held.sectors) == {name for s in live for name in s.alert_sectors}
    for name, sector in held.sectors.items():
        here = sorted((s for s in live if name in s.alert_sectors), key=lambda s: (s.at, s.incident_id))
        assert [t[3] for t in sector.timeline] == here
        arrived = [entry[0] for entry in sector.held.values()]
        assert arrived == sorted(arrived)
        for incident_id, entry in sector.held.items():
            assert held.summaries[incident_id] is entry[2] and name in entry[2].alert_sectors


def check_escalations(held: HeldIncidents) -> None:
    live = [s for s in held.summaries.values() if not s.merged]
    for name, sector in held.sectors.items():
        timeline = Timeline(s for s in live if name in s.alert_sectors)
        escalations = sector.escalations
        escalating = []
        for candidate in escalations.candidates.values():
            x = candidate.summary
            assert held.summaries[x.incident_id] is x and name in x.alert_sectors
            assert candidate.escalates == rule._escalates(x, timeline, RULES), (name, x.incident_id)
            if candidate.escalates:
                escalating.append(x)
        assert escalations.count() == len(escalating)
        if escalating:
            assert escalations.top() == max(s.severity for s in escalating)
            assert escalations.last_seen() == max(s.seen_at for s in escalating)
            newest = rule._ids(escalations.newest(rule.MAX_IDS))
            assert newest == rule._ids(escalating)


def check_surge(held: HeldIncidents) -> None:
    live = [s for s in held.summaries.values() if not s.merged]
    timeline = Timeline(live)
    watch = held.surge
    met = []
    seen = 0
    for block, first in zip(watch.blocks, watch.firsts, strict=True):
        assert block.keys and block.keys == sorted(block.keys) and first <= block.keys[0]
        for j, (at, incident_id) in enumerate(block.keys):
            x = held.summaries[incident_id]
            assert not x.merged and micros(x.at) == at
            start = x.at - RULES.surge_window
            count, before = timeline.count(start, x.at), timeline.count(start - RULES.surge_baseline, start)
            threshold = rule.surge_measure(count, before, RULES)[2]
            assert block.counts[j] + block.dc == count
            assert block.befores[j] + block.db == before
            assert block.met[j] == (count >= threshold)
            if block.met[j]:
                met.append((count, x.at, incident_id, before, x.seen_at))
        seen += len(block.keys)
    assert seen == len(watch.watched)
    assert [k for b in watch.blocks for k in b.keys] == sorted(k for b in watch.blocks for k in b.keys)
    found = watch.best()
    if not met:
        assert found is None
    else:
        count, _, _, before, _ = max(met)
        assert found == (count, before, max(m[4] for m in met))


steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("put"),
            st.integers(0, 11),  # incident: few, so that most come in several versions
            st.sampled_from([0, 0, 0, 1, 1, 2, 4]),  # quarter-hours the clock moves on
            st.sampled_from([0, 0, 0, 1, 3, 8, 20]),  # quarter-hours late
            st.integers(1, 5),  # rung
            st.integers(0, len(SECTORS) - 1),
            st.sampled_from([False, False, False, False, True]),  # merged
        ),
        st.tuples(st.just("forget"), st.integers(4, 40)),  # what arrived this many quarter-hours ago goes
        st.tuples(st.just("prune"), st.integers(0, 12)),  # the holds end this many quarter-hours ago
    ),
    max_size=80,
)


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(surge, "SIZE", 2)


@settings(max_examples=150, deadline=None)
@given(ops=steps)
def test_the_indexes_equal_the_summaries_they_index(ops: list[tuple]) -> None:
    held = HeldIncidents(RULES)
    versions: dict[int, int] = {}
    clock = 0
    for op in ops:
        if op[0] == "put":
            _, n, step, late, rung, sectors, merged = op
            clock += step
            versions[n] = versions.get(n, 0) + 1
            held.put(summary(n, versions[n], clock - late, clock, rung, sectors, merged))
        elif op[0] == "forget":
            held.forget(micros(quarter(clock - op[1])))
        else:
            since = micros(quarter(clock - op[1]))
            for name in list(held.sectors):
                held.violation(name, since)
                held.escalating(name, since)
            held.surging(since)
        check_timelines(held)
        check_escalations(held)
        check_surge(held)


def test_a_blocker_frees_only_what_it_alone_blocked() -> None:
    """Artillery an hour after a mortar round, then a second mortar round between them: removing the
    first mortar round leaves the artillery blocked; removing the second frees it."""
    rules = rule.AlertRules(escalation_lookback=timedelta(hours=3))
    held = HeldIncidents(rules)
    held.put(summary(1, 1, 0, 0, Severity.MORTAR, 0, False))
    held.put(summary(2, 1, 4, 4, Severity.ARTILLERY, 0, False))
    sector = held.sectors["Poonch"].escalations
    assert sector.count() == 0  # a rung above LIGHT in the look-back
    held.put(summary(3, 1, 2, 5, Severity.MORTAR, 0, False))
    held.put(summary(1, 2, 0, 6, Severity.MORTAR, 0, True))  # the first round merged away
    assert sector.count() == 0
    held.put(summary(3, 2, 2, 7, Severity.MORTAR, 0, True))
    assert sector.count() == 1
