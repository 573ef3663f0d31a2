"""The demo scenario: fresh on disk, counted right by ingest, and telling the story the later stages need."""

from __future__ import annotations

import random
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from schemas.alert import Alert, AlertName
from schemas.ceasefire import NEUTRAL, Registry, great_circle_km
from schemas.incident import RUNG, Incident, Severity
from schemas.report import AcceptedReport
from services.alert.rules import AlertEngine
from services.console import demo as generator
from services.console.demo import (
    CEASEFIRE_ID,
    EXPECTED,
    PHASES,
    REPLAY_NOW,
    SCENARIO_PATH,
    SEED,
    SOURCES,
    SURGE_START,
    PlannedIncident,
    Planner,
    Scenario,
    build,
    main,
)
from services.correlate.state import Correlator
from services.ingest.dedup import DedupState
from services.ingest.validate import Reason, Rules, primary_reason, validate
from services.store import MemoryStore

Identity = tuple[str, str]


@dataclass
class Ingested:
    """What validate + dedup made of each line, in file order."""

    accepted: dict[Identity, AcceptedReport] = field(default_factory=dict)
    position: dict[Identity, int] = field(default_factory=dict)  # line number of each accepted report
    exact: int = 0
    resubmissions: int = 0
    dead: Counter[Reason] = field(default_factory=Counter)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return build()


@pytest.fixture(scope="module")
def ingested(scenario: Scenario, registry: Registry) -> Ingested:
    rules, state, out = Rules(registry), DedupState(MemoryStore(), retention_seconds=14 * 24 * 3600), Ingested()
    for number, line in enumerate(scenario.lines):
        verdict = validate(line, rules, REPLAY_NOW)
        if isinstance(verdict, list):
            out.dead[primary_reason(verdict)] += 1
            continue
        decision = state.decide(verdict)
        state.commit()
        if decision.rule == "exact":
            out.exact += 1
        elif decision.rule == "resubmission":
            out.resubmissions += 1
        else:
            out.accepted[verdict.identity] = verdict
            out.position[verdict.identity] = number
    return out


def _reports(incident: PlannedIncident, ingested: Ingested) -> list[AcceptedReport]:
    return [ingested.accepted[identity] for identity in incident.reports]


def _severity(reports: Iterable[AcceptedReport]) -> Severity:
    return max(RUNG[r.violation_type] for r in reports)


def _phase(scenario: Scenario, ingested: Ingested, name: str) -> list[list[AcceptedReport]]:
    found = [_reports(i, ingested) for i in scenario.incidents if i.phase == name]
    return sorted(found, key=lambda reports: min(r.observed_at for r in reports))


def _start(reports: list[AcceptedReport]) -> datetime:
    return min(r.observed_at for r in reports)


def _km(a: AcceptedReport, b: AcceptedReport) -> float:
    here, there = a.location, b.location
    assert here.lat is not None and here.lon is not None and there.lat is not None and there.lon is not None
    return great_circle_km(here.lat, here.lon, there.lat, there.lon)


def _mutual(reports: list[AcceptedReport]) -> bool:
    """An IN report accusing PK and a PK report accusing IN, 5-15 min and 2-8 km apart."""
    placed = [r for r in reports if r.location.lat is not None]
    ours = [r for r in placed if (r.source_party, r.accused_party) == ("IN", "PK")]
    theirs = [r for r in placed if (r.source_party, r.accused_party) == ("PK", "IN")]
    return any(
        timedelta(minutes=5) <= abs(a.observed_at - b.observed_at) <= timedelta(minutes=15)
        and 2 <= _km(a, b) <= 8
        for a in ours
        for b in theirs
    )


# --- the file and the generator ---


@pytest.fixture
def built(scenario: Scenario, monkeypatch: pytest.MonkeyPatch) -> Scenario:
    """`main` gets the module's scenario instead of building it again (building is tested on its own)."""
    monkeypatch.setattr(generator, "build", lambda: scenario)
    return scenario


def test_the_checked_in_file_is_what_the_generator_writes(built: Scenario) -> None:
    assert SCENARIO_PATH.read_bytes() == built.render()
    assert main(["--check"]) == 0


def test_check_fails_on_a_stale_file_and_writing_makes_it_fresh(built: Scenario, tmp_path: Path) -> None:
    scenario, out = built, tmp_path / "scenario.jsonl"
    out.write_bytes(scenario.render()[:-1])
    assert main(["--check", "--out", str(out)]) == 1
    assert main(["--out", str(out)]) == 0
    assert out.read_bytes() == scenario.render()


def test_the_generator_is_deterministic_in_its_seed(scenario: Scenario, registry: Registry) -> None:
    assert build().lines == scenario.lines
    ceasefire, phase = registry.get(CEASEFIRE_ID), PHASES[0]
    assert ceasefire is not None

    def first_incident(seed: int) -> list[tuple[str, float | None]]:
        drafts = Planner(random.Random(seed), ceasefire).place(phase.times[0], phase)
        return [(d.source.name, d.point and d.point[0]) for d in drafts]

    assert first_incident(SEED) == first_incident(SEED)
    assert first_incident(SEED) != first_incident(SEED + 1)


def test_what_the_generator_counted_is_what_it_promises(scenario: Scenario) -> None:
    assert scenario.tally == EXPECTED


# --- what ingest makes of it ---


def test_ingest_counts_every_line_as_promised(scenario: Scenario, ingested: Ingested) -> None:
    assert len(scenario.lines) == EXPECTED.lines
    assert len(ingested.accepted) == EXPECTED.accepted
    assert ingested.exact == EXPECTED.exact_duplicates
    assert ingested.resubmissions == EXPECTED.resubmissions
    assert dict(ingested.dead) == EXPECTED.dead_letters
    assert sum(EXPECTED.dead_letters.values()) + EXPECTED.accepted + EXPECTED.exact_duplicates + (
        EXPECTED.resubmissions
    ) == EXPECTED.lines


def test_noise_is_in_the_proportions_the_demo_promises() -> None:
    lines = EXPECTED.lines
    assert 400 <= lines <= 700
    assert 0.08 <= EXPECTED.exact_duplicates / lines <= 0.12
    assert 0.02 <= EXPECTED.resubmissions / lines <= 0.04
    assert 0.02 <= sum(EXPECTED.dead_letters.values()) / lines <= 0.04
    assert len(EXPECTED.dead_letters) >= 8  # garbage of varied kinds


def test_valid_reports_are_plausible(ingested: Ingested, registry: Registry) -> None:
    ceasefire = registry.get(CEASEFIRE_ID)
    assert ceasefire is not None
    for report in ingested.accepted.values():
        assert report.source_party == SOURCES[report.source].party
        assert report.observed_at >= ceasefire.effective_from
        assert 1 <= report.location.precision_km <= 5
        assert report.description is not None and len(report.description) <= 160
        sector = ceasefire.sector(report.location.sector) if report.location.sector else None
        if sector is not None and report.location.lat is not None:
            assert sector.contains(report.location.lat, report.location.lon)  # type: ignore[arg-type]
        if report.source_party != NEUTRAL:
            assert report.accused_party == ({"IN", "PK"} - {report.source_party}).pop()


# --- what correlation should find ---


def _correlate(reports: Iterable[AcceptedReport], registry: Registry) -> dict[str, Incident]:
    """The real correlator over `reports` in the given order: the last record of every incident."""
    ceasefire = registry.get(CEASEFIRE_ID)
    assert ceasefire is not None
    correlator, last = Correlator(ceasefire), dict[str, Incident]()
    for report in reports:
        for incident in correlator.add(report):
            last[incident.incident_id] = incident
    return last


def _in_file_order(ingested: Ingested) -> list[AcceptedReport]:
    return sorted(ingested.accepted.values(), key=lambda r: ingested.position[r.identity])


def test_correlation_rebuilds_exactly_the_planned_incidents(
    scenario: Scenario, ingested: Ingested, registry: Registry
) -> None:
    planned = {frozenset(i.reports) for i in scenario.incidents}
    assert len(planned) == EXPECTED.incidents
    assert sum(len(i.reports) for i in scenario.incidents) == EXPECTED.accepted == len(ingested.accepted)
    for incident in scenario.incidents:
        reports = _reports(incident, ingested)
        assert 1 <= len({r.source for r in reports}) == len(reports) <= 4  # one report per source
    last = _correlate(_in_file_order(ingested), registry)
    live = [i for i in last.values() if i.status != "merged"]
    rebuilt = {frozenset((r.source, r.report_id) for r in i.reports) for i in live}
    assert rebuilt == planned
    assert sum(i.status == "merged" for i in last.values()) == 1  # the bridge, and nothing else


def test_a_later_report_bridges_two_incidents(
    scenario: Scenario, ingested: Ingested, registry: Registry
) -> None:
    (bridged,) = [i for i in scenario.incidents if i.bridge]
    assert bridged.bridge is not None and bridged.reports[-1] == bridged.bridge
    reports = _reports(bridged, ingested)
    assert ingested.position[bridged.bridge] > max(ingested.position[r.identity] for r in reports[:-1])
    apart = _correlate([r for r in _in_file_order(ingested) if r.identity != bridged.bridge], registry)
    homes = {i.incident_id for i in apart.values() if i.status != "merged" for r in i.reports
             if (r.source, r.report_id) in bridged.reports}
    assert len(homes) == 2


def test_one_report_arrives_three_hours_late(scenario: Scenario, ingested: Ingested) -> None:
    (late,) = [i.late for i in scenario.incidents if i.late is not None]
    position = ingested.position[late]
    by_position = {n: ingested.accepted[identity] for identity, n in ingested.position.items()}
    around = [by_position[n] for n in range(position - 4, position + 5) if n in by_position and n != position]
    median = statistics.median(r.observed_at.timestamp() for r in around)
    behind = median - by_position[position].observed_at.timestamp()
    assert 2.5 * 3600 <= behind <= 3.5 * 3600


def test_lines_are_in_rough_event_time_order(scenario: Scenario, ingested: Ingested) -> None:
    special = {i.late for i in scenario.incidents} | {i.bridge for i in scenario.incidents}
    kept = [identity for identity in ingested.position if identity not in special]
    ordered = sorted((ingested.position[k], ingested.accepted[k].observed_at) for k in kept)
    latest = ordered[0][1]
    for _, observed in ordered:
        assert observed >= latest - timedelta(minutes=45)
        latest = max(latest, observed)


# --- the story the alert stage should tell ---


def test_calm_is_light_and_sparse(scenario: Scenario, ingested: Ingested) -> None:
    calm = _phase(scenario, ingested, "calm")
    assert all(_severity(r) == Severity.LIGHT for r in calm)
    starts = [_start(r) for r in calm]
    assert all(b - a >= timedelta(hours=1) for a, b in zip(starts, starts[1:], strict=False))


def test_the_tense_night_has_accusations_and_corroboration(scenario: Scenario, ingested: Ingested) -> None:
    night = _phase(scenario, ingested, "tense night")
    assert max(_severity(r) for r in night) == Severity.MORTAR
    assert sum(_mutual(r) for r in night) >= 8
    assert sum(any(x.source == "un.unmogip" for x in r) and _mutual(r) for r in night) >= 3
    assert len({x.location.sector for r in night for x in r if x.location.sector}) >= 6


def test_the_flare_up_fires_every_alert_rule(scenario: Scenario, ingested: Ingested) -> None:
    flare = _phase(scenario, ingested, "flare-up")
    first_artillery = min(_start(r) for r in flare if _severity(r) == Severity.ARTILLERY)
    first_drone = min(_start(r) for r in flare if _severity(r) >= Severity.DRONE)
    assert first_artillery < first_drone  # escalation climbs the ladder
    assert any(_severity(r) == Severity.STRIKE for r in flare)
    assert sum(any((x.casualties and x.casualties.killed or 0) > 0 for x in r) for r in flare) >= 3
    assert sum(_mutual(r) for r in flare) >= 5
    every = [_reports(i, ingested) for i in scenario.incidents]
    surge = [r for r in every if SURGE_START <= _start(r) < SURGE_START + timedelta(hours=1)]
    before = [r for r in every if SURGE_START - timedelta(hours=24) <= _start(r) < SURGE_START]
    assert len(surge) >= 8
    assert len({x.location.sector for r in surge for x in r if x.location.sector}) >= 3
    assert len(before) / 24 <= 0.5  # a quiet day before the surge


def test_de_escalation_is_light_with_long_quiet_gaps(scenario: Scenario, ingested: Ingested) -> None:
    calming = _phase(scenario, ingested, "de-escalation")
    assert all(_severity(r) == Severity.LIGHT for r in calming)
    starts = [_start(r) for r in calming]
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert sum(gap > timedelta(hours=6) for gap in gaps) >= 4
    flare_end = max(_start(r) for r in _phase(scenario, ingested, "flare-up"))
    assert all(start > flare_end for start in starts)


def test_the_alert_stage_tells_the_story(ingested: Ingested, registry: Registry) -> None:
    """Final incidents replayed in event-time order through the real alert engine (a quicker replay than
    every version): each rule fires, and the flare-up's rules first fire in the flare-up."""
    ceasefire = registry.get(CEASEFIRE_ID)
    assert ceasefire is not None
    last = [i for i in _correlate(_in_file_order(ingested), registry).values() if i.status != "merged"]
    engine = AlertEngine(ceasefire)
    alerts: list[Alert] = []
    for incident in sorted(last, key=lambda i: (i.last_observed_at, i.incident_id)):
        alerts += engine.observe(incident)
    alerts += engine.advance(REPLAY_NOW)
    first: dict[tuple[str, str], datetime] = {}
    for alert in alerts:
        if alert.status == "firing":
            first.setdefault((alert.alertname, alert.severity), alert.updated_at)
    flare_up = (SURGE_START - timedelta(hours=2), SURGE_START + timedelta(hours=10))
    assert {name for name, _ in first} == set(AlertName)
    for name in (AlertName.ESCALATION, AlertName.CASUALTIES, AlertName.VIOLATION_SURGE):
        assert flare_up[0] <= first[(name, "critical")] <= flare_up[1], name
    assert flare_up[0] <= first[(AlertName.FRAGILITY_HIGH, "critical")] <= flare_up[1]  # index >= 75
    assert first[(AlertName.FRAGILITY_HIGH, "warning")] > SURGE_START - timedelta(hours=36)  # not while calm
    resolved = {a.alertname for a in alerts if a.status == "resolved"}
    assert AlertName.CEASEFIRE_VIOLATION in resolved and AlertName.FRAGILITY_HIGH in resolved
