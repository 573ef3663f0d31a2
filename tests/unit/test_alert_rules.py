"""Alert rules and episodes: each rule fires on its scenario and not on a near miss; resolve once;
repeats; idempotent re-delivery; replay determinism; persisted-state round trip."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.alert import Alert
from schemas.ceasefire import Ceasefire, Registry
from schemas.incident import Incident
from schemas.report import ViolationType
from services.alert import journal
from services.alert.conditions import fragility_level
from services.alert.rules import AlertEngine, AlertRules
from tests.support.incidents import CEASEFIRE, at, incident

ART = ViolationType.ARTILLERY
Step = Incident | float  # an incident version, or advance the watermark to this many hours after START
NO_REPEATS = AlertRules(repeat_interval=timedelta(days=30))  # for tests about something else


@pytest.fixture(scope="module")
def ceasefire(registry: Registry) -> Ceasefire:
    found = registry.get(CEASEFIRE)
    assert found is not None
    return found


def run(engine: AlertEngine, steps: Iterable[Step]) -> list[Alert]:
    out: list[Alert] = []
    for step in steps:
        out += engine.observe(step) if isinstance(step, Incident) else engine.advance(at(step))
    return out


def named(alerts: Iterable[Alert], name: str) -> list[Alert]:
    return [a for a in alerts if a.alertname == name]


def scope(alert: Alert) -> str:
    return alert.labels.get("sector") or alert.labels.get("incident") or ""


def brief(alerts: Iterable[Alert]) -> list[tuple[str, str, str, int]]:
    return [(a.alertname, a.status, scope(a), a.version) for a in alerts]


# --- CeasefireViolation -------------------------------------------------------------------------


def test_violation_fires_per_sector_after_effective_from(ceasefire: Ceasefire) -> None:
    engine = AlertEngine(ceasefire)
    alerts = run(engine, [incident("a", 0, sectors=["Poonch"]), incident("b", 0.5, sectors=[])])
    assert brief(named(alerts, "CeasefireViolation")) == [
        ("CeasefireViolation", "firing", "Poonch", 1),
        ("CeasefireViolation", "firing", "unknown", 1),
    ]
    first = alerts[0]
    assert first.severity == "warning" and first.starts_at == at(0) and first.ends_at is None
    assert first.annotations.incident_ids == ["a"]


def test_violation_near_miss_before_effective_from(ceasefire: Ceasefire) -> None:
    before = (ceasefire.effective_from - at(0)) / timedelta(hours=1) - 0.01  # 36 s before it took effect
    assert run(AlertEngine(ceasefire), [incident("a", before)]) == []


def test_violation_resolves_once_after_six_quiet_hours(ceasefire: Ceasefire) -> None:
    engine = AlertEngine(ceasefire, AlertRules(repeat_interval=timedelta(days=1)))
    run(engine, [incident("a", 0), incident("b", 2)])
    assert run(engine, [5.0, 7.99]) == []  # b renewed the hold: 2 h + 6 h
    (resolved,) = run(engine, [8.0])
    assert (resolved.status, resolved.ends_at, resolved.starts_at) == ("resolved", at(8), at(0))
    assert resolved.version == 3  # firing, count 2, resolved
    assert run(engine, [9, 30, 60]) == []
    assert engine.firing() == []


def test_resolution_carries_the_exact_end_when_the_watermark_jumps(ceasefire: Ceasefire) -> None:
    engine = AlertEngine(ceasefire)
    run(engine, [incident("a", 0)])
    alerts = run(engine, [incident("b", 20)])  # nothing in between: one episode ended, another begins
    assert [(a.status, a.starts_at, a.ends_at, a.version) for a in named(alerts, "CeasefireViolation")] == [
        ("resolved", at(0), at(6), 2),
        ("firing", at(20), None, 3),
    ]
    assert len({a.fingerprint for a in named(alerts, "CeasefireViolation")}) == 1


def test_count_rise_re_emits_but_a_fall_does_not(ceasefire: Ceasefire) -> None:
    engine = AlertEngine(ceasefire, NO_REPEATS)
    alerts = run(engine, [incident("a", 0), incident("b", 1), incident("c", 2), 6.5, incident("d", 7)])
    # a, b, c: counts 1, 2, 3; a ages out at 6 and b at 7: silent; d brings it back to 2: no new peak
    assert [a.version for a in named(alerts, "CeasefireViolation")] == [1, 2, 3]
    assert named(alerts, "CeasefireViolation")[-1].annotations.incident_ids == ["c", "b", "a"]


# --- repeat_interval --------------------------------------------------------------------------------


def test_repeats_every_interval_while_firing(ceasefire: Ceasefire) -> None:
    engine = AlertEngine(ceasefire, AlertRules(repeat_interval=timedelta(hours=2)))
    run(engine, [incident("a", 0)])
    steps = [1.0, 1.99, 2.0, 3.0, 4.5, 5.99, 6.0]
    alerts = [(h, a.status, a.updated_at, a.version) for h in steps for a in run(engine, [h])]
    assert alerts == [(2.0, "firing", at(2), 2), (4.5, "firing", at(4.5), 3), (6.0, "resolved", at(6), 4)]


def test_default_repeat_interval_is_four_hours(ceasefire: Ceasefire) -> None:
    engine = AlertEngine(ceasefire)
    # one incident every 2 h keeps the sector firing; the count peaks at 3 by 4 h
    steps: list[Step] = [incident(f"i{h}", h) for h in range(0, 24, 2)]
    alerts = named(run(engine, steps), "CeasefireViolation")
    # repeats 4 h after the last record; they fall due as the watermark reaches 8 h, before i8 joins
    assert [(a.updated_at, a.annotations.incident_ids[:1]) for a in alerts] == [
        (at(0), ["i0"]),
        (at(2), ["i2"]),
        (at(4), ["i4"]),
        (at(8), ["i6"]),
        (at(12), ["i10"]),
        (at(16), ["i14"]),
        (at(20), ["i18"]),
    ]
    assert {a.starts_at for a in alerts} == {at(0)}


# --- MutualAccusation ----------------------------------------------------------------------------


def test_mutual_fires_when_an_incident_becomes_mutual(ceasefire: Ceasefire) -> None:
    engine = AlertEngine(ceasefire)
    assert named(run(engine, [incident("a", 0)]), "MutualAccusation") == []
    (mutual,) = named(run(engine, [incident("a", 0.2, version=2, status="mutual")]), "MutualAccusation")
    assert mutual.labels == {
        "alertname": "MutualAccusation",
        "ceasefire": CEASEFIRE,
        "severity": "warning",
        "incident": "a",
    }


def test_mutual_near_miss_corroborated_by_a_neutral_observer(ceasefire: Ceasefire) -> None:
    alerts = run(AlertEngine(ceasefire), [incident("a", 0, status="corroborated")])
    assert named(alerts, "MutualAccusation") == []


def test_per_incident_alert_resolves_after_hold_and_new_version_renews_it(ceasefire: Ceasefire) -> None:
    engine = AlertEngine(ceasefire, NO_REPEATS)
    run(engine, [incident("a", 0, status="mutual"), incident("a", 4, version=2, status="mutual")])
    assert named(run(engine, [9.9]), "MutualAccusation") == []
    (resolved,) = named(run(engine, [10.0]), "MutualAccusation")
    assert (resolved.status, resolved.ends_at) == ("resolved", at(10))


def test_merged_incident_resolves_and_survivor_carries_the_alert(ceasefire: Ceasefire) -> None:
    engine = AlertEngine(ceasefire)
    run(engine, [incident("a", 0, status="mutual"), incident("b", 0.1)])
    alerts = run(
        engine,
        [
            incident("a", 0.2, version=2, status="merged", merged_into="b"),
            incident("b", 0.2, version=2, status="mutual"),
        ],
    )
    assert brief(named(alerts, "MutualAccusation")) == [
        ("MutualAccusation", "resolved", "a", 2),
        ("MutualAccusation", "firing", "b", 1),
    ]


# --- Escalation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("history", "then", "fires"),
    [
        ([ViolationType.SMALL_ARMS], ART, True),  # two rungs up
        ([ViolationType.MORTAR], ART, False),  # near miss: one rung up
        ([], ViolationType.MORTAR, False),  # near miss: silence counts as the bottom rung
        ([], ART, True),
        ([ViolationType.ARTILLERY], ViolationType.DRONE, True),  # DRONE always escalates
        ([ViolationType.MISSILE], ViolationType.AIR_STRIKE, True),  # so does STRIKE
    ],
)
def test_escalation_against_the_sectors_last_24_hours(
    ceasefire: Ceasefire, history: list[ViolationType], then: ViolationType, fires: bool
) -> None:
    engine = AlertEngine(ceasefire)
    run(engine, [incident(f"h{n}", n, violation=v) for n, v in enumerate(history)])
    emitted = named(run(engine, [incident("x", 10, violation=then)]), "Escalation")
    alerts = [a for a in emitted if a.status == "firing"]  # the history may have escalated and resolved
    assert [(a.severity, a.labels["sector"], a.annotations.incident_ids) for a in alerts] == (
        [("critical", "Poonch", ["x"])] if fires else []
    )


def test_escalation_looks_back_24_hours_in_the_same_sector_only(ceasefire: Ceasefire) -> None:
    engine = AlertEngine(ceasefire)
    run(engine, [incident("m", 0, violation=ViolationType.MORTAR, sectors=["Rajouri"])])
    run(engine, [incident("old", 1, violation=ViolationType.MORTAR)])
    # Poonch had a mortar 23.5 h before: silent; Rajouri's mortar is 25.5 h old: artillery escalates
    assert named(run(engine, [incident("x", 24.5, violation=ART)]), "Escalation") == []
    assert named(run(engine, [incident("y", 25.5, violation=ART, sectors=["Rajouri"])]), "Escalation") != []


# --- Casualties -------------------------------------------------------------------------------------


def test_casualties_fire_and_re_emit_when_the_toll_rises(ceasefire: Ceasefire) -> None:
    engine = AlertEngine(ceasefire)
    (first,) = named(run(engine, [incident("a", 0, killed=1)]), "Casualties")
    (rise,) = named(run(engine, [incident("a", 0.5, version=2, killed=3)]), "Casualties")
    same = named(run(engine, [incident("a", 0.7, version=3, killed=3, injured=4)]), "Casualties")
    assert (first.severity, first.version, rise.version, rise.starts_at) == ("critical", 1, 2, at(0))
    assert same == []  # injuries are not the Casualties count
    assert "3 killed" in rise.annotations.summary


@pytest.mark.parametrize("killed", [0, None])
def test_casualties_near_miss(ceasefire: Ceasefire, killed: int | None) -> None:
    alerts = run(AlertEngine(ceasefire), [incident("a", 0, killed=killed, injured=5)])
    assert named(alerts, "Casualties") == []


# --- ViolationSurge ---------------------------------------------------------------------------------


def burst(prefix: str, start: float, n: int) -> list[Step]:
    return [incident(f"{prefix}{k}", start + k * 0.1, sectors=[f"S{k % 4}"]) for k in range(n)]


def test_surge_fires_at_five_in_an_hour_and_not_at_four(ceasefire: Ceasefire) -> None:
    assert named(run(AlertEngine(ceasefire), burst("s", 30, 4)), "ViolationSurge") == []
    alerts = named(run(AlertEngine(ceasefire), burst("s", 30, 5)), "ViolationSurge")
    assert [(a.status, a.starts_at, a.labels) for a in alerts] == [
        ("firing", at(30.4), {"alertname": "ViolationSurge", "ceasefire": CEASEFIRE, "severity": "critical"})
    ]


def test_surge_threshold_follows_the_baseline(ceasefire: Ceasefire) -> None:
    """Two incidents an hour over (15 h, 39 h]: the threshold at 40 h is 3 x 2 = 6, not 5."""
    busy_day: list[Step] = [
        incident(f"b{h}-{d}", 15 + h + d, sectors=["Kathua"]) for h in range(24) for d in (0.25, 0.75)
    ]
    near = named(run(AlertEngine(ceasefire), [*busy_day, *burst("s", 39.5, 5)]), "ViolationSurge")
    assert near == []
    hit = named(run(AlertEngine(ceasefire), [*busy_day, *burst("s", 39.5, 6)]), "ViolationSurge")
    assert [(a.status, a.starts_at) for a in hit] == [("firing", at(40))]


def test_surge_keeps_firing_an_hour_then_resolves_once(ceasefire: Ceasefire) -> None:
    engine = AlertEngine(ceasefire)
    run(engine, burst("s", 30, 5))  # the fifth at 30.4
    assert named(run(engine, [31.0, 31.39]), "ViolationSurge") == []
    (resolved,) = named(run(engine, [31.4]), "ViolationSurge")
    assert (resolved.status, resolved.ends_at) == ("resolved", at(31.4))
    assert named(run(engine, [40]), "ViolationSurge") == []


# --- FragilityHigh ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "current", "expected"),
    [
        (49.9, None, None),
        (50, None, "warning"),
        (75, None, "critical"),
        (74.9, "warning", "warning"),
        (66, "critical", "critical"),  # hysteresis: stays critical down to 65
        (64.9, "critical", "warning"),
        (45, "warning", "warning"),  # stays warning down to 40
        (45, None, None),
        (39.9, "warning", None),
        (39.9, "critical", None),
    ],
)
def test_fragility_level_hysteresis(index: float, current: str | None, expected: str | None) -> None:
    assert fragility_level(index, current, AlertRules()) == expected


def test_fragility_high_rises_to_critical_and_falls_back_with_hysteresis(ceasefire: Ceasefire) -> None:
    engine = AlertEngine(ceasefire, NO_REPEATS)
    kw = {"status": "mutual", "violation": ART, "killed": 1}
    collapse: list[Step] = [incident(f"c{h}", h, sectors=[f"S{h % 3}"], **kw) for h in range(12)]
    alerts = named(run(engine, [*collapse, *[11 + q / 4 for q in range(1, 4 * 40)]]), "FragilityHigh")
    assert [(a.status, a.severity) for a in alerts] == [
        ("firing", "warning"),
        ("firing", "critical"),
        ("firing", "warning"),
        ("resolved", "warning"),
    ]
    assert [a.version for a in alerts] == [1, 2, 3, 4]
    assert len({a.starts_at for a in alerts}) == 1
    assert [a.updated_at for a in alerts] == [at(1), at(3), at(14.75), at(16)]  # critical held down to 65


# --- idempotency, replay, persistence ---------------------------------------------------------------


def test_redelivered_and_older_versions_change_nothing(ceasefire: Ceasefire) -> None:
    engine = AlertEngine(ceasefire)
    v1, v2 = incident("a", 0), incident("a", 0.5, version=2, status="mutual", killed=1)
    assert run(engine, [v1, v2]) != []
    engine.take_changes()
    assert run(engine, [v1, v2, v1, v2]) == []
    assert engine.take_changes() == {}


def test_other_ceasefires_incident_is_refused(ceasefire: Ceasefire) -> None:
    with pytest.raises(ValueError, match="not in-pk"):
        AlertEngine(ceasefire).observe(incident("a", 0, ceasefire_id="il-lb-2024-11-27"))


def test_late_incident_still_raises_its_alert(ceasefire: Ceasefire) -> None:
    engine = AlertEngine(ceasefire)
    run(engine, [incident("a", 20, sectors=["Kupwara"])])
    (late,) = named(run(engine, [incident("b", 10, sectors=["Samba"], killed=2)]), "Casualties")
    assert late.starts_at == at(20)  # held from when the engine learned of it


def test_resolved_per_incident_alerts_are_forgotten_after_retention(ceasefire: Ceasefire) -> None:
    engine = AlertEngine(ceasefire)
    run(engine, [incident("a", 0, killed=1), 6.0])
    engine.take_changes()
    run(engine, [6 + 24 * 7])
    gone = [k for k, v in engine.take_changes().items() if k.startswith("alert") and v is None]
    assert len(gone) == 1  # Casualties of a; the sector's CeasefireViolation is kept for its version


def scenario() -> list[Step]:
    """A day of mixed trouble: quiet, a mutual exchange that escalates with casualties, a surge, a merge."""
    steps: list[Step] = [incident("q1", 0.5), 3.0, incident("q2", 7, sectors=["Kupwara"])]
    steps += [incident("e1", 8, sectors=["Rajouri"]), incident("e1", 8.2, version=2, status="mutual")]
    steps += [incident("e1", 8.4, version=3, status="mutual", violation=ART, killed=2, sectors=["Rajouri"])]
    steps += [incident("e1", 8.2, version=2, status="mutual")]  # re-delivered, out of order
    steps += burst("s", 9, 7)
    steps += [incident("s1", 9.8, version=2, status="merged", merged_into="s0")]
    steps += [incident("s0", 9.8, version=2, status="mutual", violation=ViolationType.DRONE, sectors=["S0"])]
    steps += [12.0, incident("late", 6, sectors=[], injured=1), 20.0]
    steps += [incident("d2", 40, sectors=["Poonch"]), 80.0]
    return steps


def test_replay_yields_identical_alert_records(ceasefire: Ceasefire) -> None:
    first = run(AlertEngine(ceasefire), scenario())
    second = run(AlertEngine(ceasefire), scenario())
    assert len(first) > 15
    assert [a.model_dump() for a in first] == [a.model_dump() for a in second]
    assert {a.alertname for a in first} == {
        "CeasefireViolation",
        "MutualAccusation",
        "Escalation",
        "Casualties",
        "ViolationSurge",
        "FragilityHigh",
    }
    check_lifecycle(first)


def check_lifecycle(alerts: list[Alert]) -> None:
    """Per fingerprint: versions 1, 2, 3, ...; one resolved per episode; a new episode has a new start."""
    by_fp: dict[str, list[Alert]] = defaultdict(list)
    for a in alerts:
        by_fp[a.fingerprint].append(a)
    for records in by_fp.values():
        assert [a.version for a in records] == list(range(1, len(records) + 1))
        assert all(x.updated_at <= y.updated_at for x, y in zip(records, records[1:], strict=False))
        for prev, a in zip([None, *records], records, strict=False):
            if prev is None or prev.status == "resolved":
                assert a.status == "firing" and a.starts_at == a.updated_at
                # A hold ends exactly 6 h after the last incident; an incident observed at that very
                # instant opens the next episode, which may therefore start when the last one ended.
                assert prev is None or a.starts_at >= prev.ends_at  # type: ignore[operator]
            else:
                assert a.starts_at == prev.starts_at
            if a.status == "resolved":
                assert a.ends_at is not None and a.ends_at >= a.starts_at


@pytest.mark.parametrize("split", [1, 4, 7, 12, 17, 20])
def test_engine_rebuilt_from_persisted_changes_behaves_identically(ceasefire: Ceasefire, split: int) -> None:
    steps = scenario()
    original = AlertEngine(ceasefire)
    store: dict[str, str] = {}
    for n, step in enumerate(steps[:split]):
        run(original, [step])
        if n % 3 == 0 or n == split - 1:  # written after some steps, and always at the split
            for key, value in original.take_changes().items():
                if value is None:
                    store.pop(key, None)
                else:
                    store[key] = value
    rebuilt = AlertEngine(ceasefire, store=store.items())
    assert rebuilt.firing() == original.firing()
    assert rebuilt.fragility() == original.fragility()
    assert run(rebuilt, steps[split:]) == run(original, steps[split:])
    assert rebuilt.take_changes() == original.take_changes()


kinds = st.sampled_from([ViolationType.SMALL_ARMS, ViolationType.MORTAR, ART, ViolationType.DRONE])
steps_strategy = st.lists(
    st.one_of(
        st.tuples(
            st.integers(0, 6),  # incident id
            st.floats(0, 48),
            kinds,
            st.sampled_from(["claimed", "mutual", "corroborated"]),
            st.sampled_from([["Poonch"], ["Rajouri"], [], ["Poonch", "Uri"]]),
            st.one_of(st.none(), st.integers(0, 3)),
        ),
        st.floats(0, 80),
    ),
    max_size=25,
)


def build(raw: list) -> list[Step]:
    versions: dict[int, int] = defaultdict(int)
    out: list[Step] = []
    for item in raw:
        if isinstance(item, float):
            out.append(item)
            continue
        n, hours, kind, status, sectors, killed = item
        versions[n] += 1
        kw = {"violation": kind, "status": status, "sectors": sectors, "killed": killed}
        out.append(incident(f"i{n}", hours, version=versions[n], **kw))
    return out


@settings(max_examples=25, deadline=None)
@given(raw=steps_strategy, split=st.integers(0, 25))
def test_any_stream_keeps_the_lifecycle_replays_and_round_trips(
    ceasefire: Ceasefire, raw: list, split: int
) -> None:
    steps = build(raw)
    once = run(AlertEngine(ceasefire), steps)
    check_lifecycle(once)
    original = AlertEngine(ceasefire)
    head = run(original, steps[:split])
    kept = {k: v for k, v in original.take_changes().items() if v is not None}
    rebuilt = AlertEngine(ceasefire, store=kept.items())
    tail = run(rebuilt, steps[split:])
    assert [a.model_dump() for a in head + tail] == [a.model_dump() for a in once]


def test_alert_times_are_event_times(ceasefire: Ceasefire) -> None:
    alerts = run(AlertEngine(ceasefire), scenario())
    assert all(at(0) <= a.updated_at <= at(80) for a in alerts)
    assert all(isinstance(a.starts_at, datetime) and a.starts_at.tzinfo is not None for a in alerts)


def test_last_violation_outlives_the_incidents_it_came_from(ceasefire: Ceasefire) -> None:
    """Recency decays beyond the horizon, so the last violation's time is persisted on its own."""
    engine = AlertEngine(ceasefire)
    run(engine, [incident("a", 0), 31.0])
    kept = {k: v for k, v in engine.take_changes().items() if v is not None}
    assert not any(k.startswith("incident") for k in kept)  # a is gone from the window state
    rebuilt = AlertEngine(ceasefire, store=kept.items())
    assert rebuilt.fragility().components.recency == pytest.approx(0.5 ** (31 / 6))
    assert rebuilt.fragility() == engine.fragility()


def persisted_state(engine: AlertEngine) -> tuple[object, ...]:
    return engine.watermark, engine.last_violation_at, dict(engine.incidents), engine.book.episodes


@pytest.mark.parametrize("part_bytes", [journal.PART_BYTES, 300])  # 300: every journal in parts
def test_any_prefix_of_a_batchs_entries_rebuilds_the_state_before_or_after_it(
    ceasefire: Ceasefire, part_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash may store any prefix of one batch's `take_changes()`. The engine rebuilt from it is where
    the batch began (the journal's head not stored: re-processing it publishes the same records again)
    or where it ended (the head stored), never a mix such as summaries stored without the alerts they
    raised; and parts left by a batch cut short are deleted by the next one."""
    monkeypatch.setattr(journal, "PART_BYTES", part_bytes)
    steps = scenario()
    engine = AlertEngine(ceasefire)
    store: dict[str, str] = {}

    def stored(entries: dict[str, str], changes: Iterable[tuple[str, str | None]]) -> dict[str, str]:
        out = dict(entries)
        for key, value in changes:
            if value is None:
                out.pop(key, None)
            else:
                out[key] = value
        return out

    for start in range(0, len(steps), 4):  # batches of four steps
        before = persisted_state(AlertEngine(ceasefire, store=store.items()))
        run(engine, steps[start : start + 4])
        after = persisted_state(engine)
        changes = list(engine.take_changes().items())
        assert len(changes) > 2
        head = [key for key, _ in changes].index(journal.JOURNAL)
        for cut in range(len(changes) + 1):
            rebuilt = AlertEngine(ceasefire, store=stored(store, changes[:cut]).items())
            want = before if cut <= head else after
            assert persisted_state(rebuilt) == want, f"batch at step {start}, cut {cut}"
        if part_bytes < journal.PART_BYTES and start == 8:  # a crash leaves this batch's parts, no head
            engine = AlertEngine(ceasefire, store=stored(store, changes[:head]).items())
            run(engine, steps[start : start + 4])
            changes = list(engine.take_changes().items())
        store = stored(store, changes)
        assert {k for k in store if k.startswith(journal.PART)} == set(engine.journal.stored_parts)
    assert part_bytes == journal.PART_BYTES or engine.journal.stored_parts, "the batches made no parts"
