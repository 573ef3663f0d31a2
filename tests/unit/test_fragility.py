"""The fragility index: scenario bounds, monotonicity, bounds, and the worked example in docs/fragility.md."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.fragility import FragilityComponents, FragilityWeights
from schemas.report import ViolationType
from services.alert.fragility import FragilityConfig, fragility_index, measure, snapshot
from services.alert.recent import IncidentSummary, summarise
from tests.support.incidents import START, at, incident

CONFIG = FragilityConfig()
DOC = Path(__file__).resolve().parents[2] / "docs" / "fragility.md"
NAMES = list(FragilityComponents.model_fields)


def summaries(*incidents_: tuple[str, float, dict]) -> list[IncidentSummary]:
    return [summarise(incident(i, h, **kw), at(h)) for i, h, kw in incidents_]


def index_over(every: list[IncidentSummary], hours: list[float]) -> list[float]:
    """The index at each sample time, seeing only incidents observed by then (as the engine would)."""
    return [snapshot("c", [s for s in every if s.at <= at(h)], at(h), CONFIG).index for h in hours]


def quarter_hours(start: float, end: float) -> list[float]:
    return [start + q / 4 for q in range(int((end - start) * 4) + 1)]


def test_quiet_ceasefire_stays_below_20() -> None:
    """One small-arms incident a day in one sector (an injury now and then) never reads as fragile."""
    quiet = summaries(*((f"q{d}", 24 * d + 7, {"injured": d % 2}) for d in range(8)))
    worst = max(index_over(quiet, quarter_hours(0, 24 * 8)))
    assert 10 < worst < 20  # it does register, but stays low


@pytest.mark.parametrize("per_sector_each_hour", [False, True])
def test_collapsing_ceasefire_scores_above_80(per_sector_each_hour: bool) -> None:
    """Hourly mutual artillery with casualties across three sectors: above 80 once six hours are in."""
    sectors = ["Poonch", "Rajouri", "Kupwara"]
    kw = {"status": "mutual", "violation": ViolationType.ARTILLERY, "killed": 1, "injured": 2}
    if per_sector_each_hour:
        spec = [(f"c{h}-{s}", h, {**kw, "sectors": [s]}) for h in range(48) for s in sectors]
    else:
        spec = [(f"c{h}", h, {**kw, "sectors": [sectors[h % 3]]}) for h in range(48)]
    collapse = summaries(*spec)
    assert min(index_over(collapse, quarter_hours(6, 47))) > 80  # the last incident is at 47 h


def test_collapse_onset_scores_higher_than_steady_collapse() -> None:
    """Trend: the same violence after a quiet day reads worse than the same violence as routine."""
    kw = {"status": "mutual", "violation": ViolationType.ARTILLERY, "killed": 1}
    onset = summaries(*((f"c{h}", 24 + h, {**kw, "sectors": [f"S{h % 3}"]}) for h in range(6)))
    steady = summaries(*((f"c{h}", h, {**kw, "sectors": [f"S{h % 3}"]}) for h in range(30)))
    (at_onset,) = index_over(onset, [29.5])
    (at_steady,) = index_over(steady, [29.5])
    assert at_onset > at_steady
    assert snapshot("c", onset, at(29.5), CONFIG).components.trend > 0.5


unit = st.floats(min_value=0, max_value=1, allow_nan=False)
components = st.builds(FragilityComponents, **{n: unit for n in NAMES})
weights = st.builds(FragilityWeights, **{n: st.floats(min_value=0.01, max_value=10) for n in NAMES})


@settings(max_examples=100, deadline=None)
@given(components, weights, st.sampled_from(NAMES), st.floats(min_value=0, max_value=1))
def test_index_is_monotone_in_each_component(
    c: FragilityComponents, w: FragilityWeights, name: str, more: float
) -> None:
    raised = c.model_copy(update={name: min(1.0, getattr(c, name) + more)})
    assert fragility_index(raised, w) >= fragility_index(c, w)
    if getattr(raised, name) - getattr(c, name) > 1e-6:
        assert fragility_index(raised, w) > fragility_index(c, w)


@settings(max_examples=100, deadline=None)
@given(components, weights)
def test_index_is_bounded(c: FragilityComponents, w: FragilityWeights) -> None:
    assert 0 <= fragility_index(c, w) <= 100


def test_index_extremes() -> None:
    zero = FragilityComponents(**dict.fromkeys(NAMES, 0.0))
    one = FragilityComponents(**dict.fromkeys(NAMES, 1.0))
    assert fragility_index(zero, FragilityWeights()) == 0
    assert fragility_index(one, FragilityWeights()) == pytest.approx(100)


incident_specs = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=40),
        st.sampled_from(list(ViolationType)),
        st.sampled_from(["claimed", "mutual", "corroborated"]),
        st.lists(st.sampled_from(["Poonch", "Rajouri", "Kupwara", "Uri"]), max_size=3, unique=True),
        st.one_of(st.none(), st.integers(0, 50)),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(incident_specs, st.floats(min_value=0, max_value=48))
def test_components_and_index_bounded_on_any_incidents(specs: list, as_of: float) -> None:
    every = [
        summarise(incident(f"i{n}", h, violation=v, status=s, sectors=sec, killed=k), at(h))
        for n, (h, v, s, sec, k) in enumerate(specs)
    ]
    snap = snapshot("c", every, at(as_of), CONFIG)  # the schema enforces each component in [0, 1]
    assert 0 <= snap.index <= 100
    assert snap.inputs.incidents_recent <= len(every)


def test_each_component_rises_with_its_input() -> None:
    """Input-level monotonicity: more of the thing a component measures never lowers it."""
    base = [("a", 1, {})]
    more = {
        "intensity": [("a", 1, {}), ("b", 2, {})],
        "trend": [("a", 1, {}), ("b", 2, {})],
        "severity": [("a", 1, {"violation": ViolationType.MORTAR})],
        "casualties": [("a", 1, {"killed": 1})],
        "reciprocity": [("a", 1, {"status": "mutual"})],
        "spread": [("a", 1, {"sectors": ["Poonch", "Rajouri"]})],
        "recency": [("a", 2, {})],
    }
    before, _ = measure(summaries(*base), at(3), CONFIG)
    for name, spec in more.items():
        after, _ = measure(summaries(*spec), at(3), CONFIG)
        assert getattr(after, name) > getattr(before, name), name


def test_recency_halves_every_half_life() -> None:
    every = summaries(("a", 0, {}))
    values = [measure(every, at(h), CONFIG)[0].recency for h in (0, 6, 12)]
    assert values == pytest.approx([1.0, 0.5, 0.25])


def test_merged_incidents_are_not_counted() -> None:
    absorbed = summarise(incident("a", 1, version=2, status="merged", merged_into="b"), at(1))
    survivor = summarise(incident("b", 1), at(1))
    _, inputs = measure([absorbed, survivor], at(2), CONFIG)
    assert inputs.incidents_recent == 1


# --- the worked example in docs/fragility.md --------------------------------------------------------


def _doc_example() -> tuple[dict, dict[str, tuple[float, float, float]], float]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Worked example", 1)[1]
    scenario = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0].strip("`") in NAMES:
            rows[cells[0].strip("`")] = (float(cells[-3]), float(cells[-2]), float(cells[-1]))
    stated = float(re.search(r"\*\*index = ([0-9.]+)\*\*", section).group(1))
    return scenario, rows, stated


def test_worked_example_in_docs_is_what_the_code_computes() -> None:
    scenario, rows, stated = _doc_example()
    assert set(rows) == set(NAMES)

    def hours(t: datetime | str) -> float:
        when = t if isinstance(t, datetime) else datetime.fromisoformat(t)
        return (when - START).total_seconds() / 3600

    every = [
        summarise(
            incident(
                i["id"],
                hours(i["at"]),
                violation=ViolationType(i["type"]),
                status=i["status"],
                sectors=[i["sector"]],
                killed=i.get("killed"),
                injured=i.get("injured"),
            ),
            at(hours(i["at"])),
        )
        for i in scenario["incidents"]
    ]
    snap = snapshot("in-pk-2025-05-10", every, at(hours(scenario["as_of"])), CONFIG)
    weights = snap.weights.model_dump()
    for name, (value, weight, contribution) in rows.items():
        assert getattr(snap.components, name) == pytest.approx(value, abs=5e-4), name
        assert weights[name] == pytest.approx(weight), name
        assert weight * getattr(snap.components, name) == pytest.approx(contribution, abs=5e-4), name
    assert snap.index == pytest.approx(stated, abs=0.05)
