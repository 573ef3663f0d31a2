"""The incremental alert engine emits exactly what evaluating every rule over every summary would.

`Reference` is the engine as first written: at every observe/advance it forgets by scanning, runs each
rule of `conditions.py` over all held summaries and reconciles them all, and computes the fragility
snapshot from the summaries. `AlertEngine` re-evaluates only the scopes whose inputs changed or that
are due, from indexes. On random streams (times on a quarter-hour grid, so holds, windows and repeats
end exactly when something else happens) the two must agree record for record, snapshot for snapshot,
also when the engine is rebuilt from its persisted entries part-way.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.alert import Alert, AlertName, fingerprint
from schemas.ceasefire import Ceasefire, Registry
from schemas.fragility import FragilitySnapshot
from schemas.incident import Incident
from schemas.report import ViolationType as V
from services.alert import conditions as rule
from services.alert.episodes import AlertBook
from services.alert.fragility import FragilityConfig, snapshot
from services.alert.recent import IncidentSummary, summarise
from services.alert.rules import AlertEngine, AlertRules
from tests.support.incidents import CEASEFIRE, at, incident

Step = Incident | float  # an incident version, or advance the watermark to this many hours after START

RULES = {
    "default": AlertRules(),
    # short holds, windows and retention, frequent repeats: more of everything happens in a short stream
    "tight": AlertRules(
        repeat_interval=timedelta(hours=1.5),
        violation_hold=timedelta(hours=2),
        incident_hold=timedelta(hours=1),
        escalation_rungs=1,
        escalation_lookback=timedelta(hours=3),
        escalation_hold=timedelta(hours=2),
        surge_baseline=timedelta(hours=4),
        surge_minimum=2,
        surge_factor=1.5,
        surge_hold=timedelta(minutes=30),
        episode_retention=timedelta(hours=5),
        fragility_warning=30.0,
        fragility_critical=45.0,
        fragility_critical_clear=40.0,
        fragility_clear=20.0,
        fragility=FragilityConfig(recent_window=timedelta(hours=2), baseline_window=timedelta(hours=5)),
    ),
}


@pytest.fixture(scope="module")
def ceasefire(registry: Registry) -> Ceasefire:
    found = registry.get(CEASEFIRE)
    assert found is not None
    return found


class Reference:
    """Every rule over every held summary at every evaluation: slow, and obviously what the docs say."""

    def __init__(self, ceasefire: Ceasefire, rules: AlertRules) -> None:
        self.ceasefire, self.rules = ceasefire, rules
        self.watermark: datetime = ceasefire.effective_from
        self.last_violation_at: datetime | None = None
        self.incidents: dict[str, IncidentSummary] = {}
        self.book = AlertBook(rules.repeat_interval)

    def observe(self, incident: Incident) -> list[Alert]:
        known = self.incidents.get(incident.incident_id)
        at_ = incident.last_observed_at
        if known is not None and incident.version <= known.version:
            return []
        if not self.ceasefire.in_force(at_) or at_ <= self.watermark - self.rules.horizon:
            return []
        emitted = self._evaluate() if self._move_to(at_) else []
        summary = summarise(incident, self.watermark)
        self.incidents[incident.incident_id] = summary
        if not summary.merged and (self.last_violation_at is None or at_ > self.last_violation_at):
            self.last_violation_at = at_
        return emitted + self._evaluate()

    def advance(self, watermark: datetime) -> list[Alert]:
        self._move_to(watermark)
        return self._evaluate()

    def fragility(self) -> FragilitySnapshot:
        cid, config = self.ceasefire.id, self.rules.fragility
        return snapshot(cid, self.incidents.values(), self.watermark, config, self.last_violation_at)

    def _move_to(self, watermark: datetime) -> bool:
        moved = watermark > self.watermark
        self.watermark = max(self.watermark, watermark)
        return moved

    def _evaluate(self) -> list[Alert]:
        now, rules, cid = self.watermark, self.rules, self.ceasefire.id
        self.incidents = {i: s for i, s in self.incidents.items() if s.seen_at > now - rules.horizon}
        retention = now - rules.episode_retention
        self.book.forget(
            [
                fp
                for fp, e in self.book.episodes.items()
                if "incident" in e.alert.labels
                if e.alert.ends_at is not None and e.alert.ends_at <= retention
            ]
        )
        summaries = list(self.incidents.values())
        conditions = [
            *rule.violations(cid, summaries, now, rules),
            *rule.mutual_accusations(cid, summaries, now, rules),
            *rule.escalations(cid, summaries, now, rules),
            *rule.casualties(cid, summaries, now, rules),
            *rule.surge(cid, summaries, now, rules),
        ]
        fragile = self.book.current(fingerprint({"alertname": AlertName.FRAGILITY_HIGH, "ceasefire": cid}))
        level = None if fragile is None else fragile.severity
        conditions += rule.fragility_high(self.fragility(), level, rules)
        return self.book.reconcile(conditions, now)


def play(engine: AlertEngine | Reference, steps: list[Step]) -> list[tuple[list[dict], FragilitySnapshot]]:
    """Per step: the records emitted (as dicts) and the fragility snapshot after it."""
    out = []
    for step in steps:
        alerts = engine.observe(step) if isinstance(step, Incident) else engine.advance(at(step))
        out.append(([a.model_dump() for a in alerts], engine.fragility()))
    return out


def rebuilt(engine: AlertEngine) -> AlertEngine:
    kept = {k: v for k, v in engine.take_changes().items() if v is not None}
    return AlertEngine(engine.ceasefire, engine.rules, store=kept.items())


def agree(ceasefire: Ceasefire, rules: AlertRules, steps: list[Step], split: int) -> None:
    expected = play(Reference(ceasefire, rules), steps)
    engine = AlertEngine(ceasefire, rules)
    head = play(engine, steps[:split])
    engine = rebuilt(engine)
    tail = play(engine, steps[split:])
    for n, (got, want) in enumerate(zip(head + tail, expected, strict=True)):
        assert got == want, f"step {n}: {steps[n]!r}"


kinds = st.sampled_from([V.SMALL_ARMS, V.MORTAR, V.ARTILLERY, V.DRONE, V.MISSILE])
sector_sets = st.sampled_from([["Poonch"], ["Rajouri"], [], ["Poonch", "Uri"], ["Uri"]])
raw_steps = st.lists(
    st.one_of(
        st.tuples(
            st.integers(0, 5),  # incident id: few, so that most come in several versions
            st.sampled_from([0, 0, 1, 2, 4, 8, 24]),  # quarter-hours the clock moves on
            st.sampled_from([0, 0, 0, 1, 8, 24, 120]),  # quarter-hours late
            kinds,
            st.sampled_from(["claimed", "claimed", "mutual", "corroborated", "merged"]),
            sector_sets,
            st.one_of(st.none(), st.integers(0, 3)),  # killed
            st.booleans(),  # an older version delivered again
        ),
        st.sampled_from([1, 4, 24, 48, 200]),  # advance the watermark by this many quarter-hours
    ),
    max_size=40,
)


def build(raw: list) -> list[Step]:
    """A stream whose clock only moves on; incidents may be late, versions may come again."""
    versions: dict[int, int] = defaultdict(int)
    clock = 0
    out: list[Step] = []
    for item in raw:
        if isinstance(item, int):
            clock += item
            out.append(clock / 4)
            continue
        n, step, late, kind, status, sectors, killed, again = item
        clock += step
        if again and versions[n]:
            version = versions[n] - 1 or 1
        else:
            versions[n] += 1
            version = versions[n]
        merged_into = f"i{(n + 1) % 6}" if status == "merged" else None
        kw = {"violation": kind, "status": status, "sectors": sectors, "killed": killed}
        out.append(incident(f"i{n}", (clock - late) / 4, version=version, merged_into=merged_into, **kw))
    return out


@pytest.mark.parametrize("rules", list(RULES), ids=list(RULES))
@settings(max_examples=80, deadline=None)
@given(raw=raw_steps, split=st.integers(0, 40))
def test_incremental_engine_matches_the_full_evaluation(
    ceasefire: Ceasefire, rules: str, raw: list, split: int
) -> None:
    steps = build(raw)
    agree(ceasefire, RULES[rules], steps, min(split, len(steps)))


def realistic(rate: float, hours: float, seed: int) -> list[Step]:
    """Poisson arrivals over five sectors, 1-3 versions each, a batch watermark every few versions."""
    rnd = random.Random(seed)
    sectors = ["Poonch", "Rajouri", "Uri", "Kupwara", "Kathua"]
    timed: list[tuple[float, int, Incident]] = []
    t, n = 0.0, 0
    while t < hours:
        t += rnd.expovariate(rate)
        n += 1
        where = [] if rnd.random() < 0.1 else rnd.sample(sectors, rnd.choice([1, 1, 1, 2]))
        kind = rnd.choices([V.SMALL_ARMS, V.MORTAR, V.ARTILLERY, V.DRONE], [60, 22, 13, 5])[0]
        status = rnd.choices(["claimed", "mutual", "corroborated"], [55, 28, 17])[0]
        killed = rnd.choice([1, 2]) if rnd.random() < 0.1 else None
        when = t
        for v in range(1, rnd.choice([1, 2, 3]) + 1):
            when += 0 if v == 1 else rnd.uniform(0.05, 0.4)
            merged = v > 1 and rnd.random() < 0.05
            kw = {"violation": kind, "sectors": where, "killed": killed, "injured": rnd.choice([None, 1])}
            status = "merged" if merged else status
            into = f"i{n - 1}" if merged else None
            found = incident(f"i{n}", when, version=v, status=status, merged_into=into, **kw)
            timed.append((when, len(timed), found))
            if merged:
                break
    timed.sort(key=lambda x: (x[0], x[1]))
    steps: list[Step] = []
    for k, (when, _, inc) in enumerate(timed):
        steps.append(inc)
        if k % 5 == 4:
            steps.append(when)
    return steps


def test_a_long_realistic_stream_matches_the_full_evaluation(ceasefire: Ceasefire) -> None:
    """Forty hours at two or three incidents an hour: forgetting, retention, surges and repeats all happen."""
    steps = realistic(rate=2.5, hours=40, seed=1)
    agree(ceasefire, AlertRules(episode_retention=timedelta(hours=20)), steps, split=len(steps) // 2)


def test_forgetting_an_incident_is_a_change_to_its_sector(ceasefire: Ceasefire) -> None:
    """A late artillery round escalates once the mortar round a day before it has aged out of memory."""
    steps: list[Step] = [
        incident("mortar", 0, violation=V.MORTAR),
        29.9,
        incident("late", 5, violation=V.ARTILLERY),  # the mortar round is in its look-back: no escalation
        30.0,  # the mortar round is forgotten (30 h horizon): the sector looks silent before `late`
    ]
    records = play(Reference(ceasefire, AlertRules()), steps)
    assert [a["labels"]["alertname"] for a in records[3][0]] == ["Escalation"]
    agree(ceasefire, AlertRules(), steps, split=4)


A = {"sectors": ["Poonch"]}
CHANGES = {  # a second version of one incident that ends (or moves) what its first version raised
    "no longer mutual": ({"status": "mutual"}, {"status": "claimed"}),
    "no longer killed": ({"killed": 2}, {"killed": 0}),
    "toll falls": ({"killed": 3}, {"killed": 1}),
    "merged away": ({"status": "mutual", "killed": 1}, {"status": "merged", "merged_into": "other"}),
    "moves sector": ({"violation": V.DRONE}, {"violation": V.DRONE, "sectors": ["Rajouri"]}),
    "loses its sector": ({"violation": V.DRONE}, {"violation": V.DRONE, "sectors": []}),
    "downgraded": ({"violation": V.ARTILLERY}, {"violation": V.SMALL_ARMS}),
    "earlier than thought": ({"violation": V.ARTILLERY}, {"violation": V.ARTILLERY, "hours": 0.5}),
}


@pytest.mark.parametrize("change", list(CHANGES), ids=list(CHANGES))
def test_a_new_version_that_ends_a_condition_matches_the_full_evaluation(
    ceasefire: Ceasefire, change: str
) -> None:
    """Conditions can stop holding without time passing: the engine must not keep them firing."""
    first, then = CHANGES[change]
    then = {"hours": 2.0, **then}
    steps: list[Step] = [
        incident("quiet", 0, sectors=["Rajouri"]),
        incident("x", 1, **first),
        *(incident(f"s{k}", 1 + k / 10) for k in range(5)),  # a surge, for the surge rule to react to
        incident("x", then.pop("hours"), version=2, **then),
        3.0,
        9.0,
    ]
    for split in (0, 3, len(steps) - 2):
        agree(ceasefire, AlertRules(), steps, split)
