"""Deduplication: exact repeats, resubmissions, staging until commit, and expiry by event time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.report import Report
from services.ingest.dedup import WATERMARK_KEY, Decision, DedupState, content_fingerprint, identity_key
from services.store import MemoryStore
from tests.support.reports import report

HOUR = 3600.0
T0 = datetime(2025, 5, 10, 12, 10, tzinfo=UTC)  # the base report's observed_at


def make(**overrides: Any) -> Report:
    return Report.model_validate(report(**overrides))


def later(minutes: float, **overrides: Any) -> Report:
    return make(observed_at=(T0 + timedelta(minutes=minutes)).isoformat(), **overrides)


def fresh(retention: float = 24 * HOUR, scope: str = "") -> tuple[DedupState, MemoryStore]:
    store = MemoryStore()
    return DedupState(store, retention, scope), store


def decide_all(state: DedupState, reports: list[Report], origins: list[str] | None = None) -> list[Decision]:
    decisions = [state.decide(r, o) for r, o in zip(reports, origins or [""] * len(reports), strict=True)]
    state.commit()
    return decisions


def outcome(decision: Decision) -> tuple[str, str | None, str | None]:
    return (decision.outcome, decision.rule, decision.duplicate_of)


ACCEPTED = ("accepted", None, None)


# --- exact rule --------------------------------------------------------------------------------------


def test_first_report_is_accepted_and_an_exact_repeat_is_a_duplicate_of_it() -> None:
    state, _ = fresh()
    decisions = decide_all(state, [make(), make()])
    assert [outcome(d) for d in decisions] == [ACCEPTED, ("duplicate", "exact", "r-1")]


def test_the_same_revision_with_different_content_is_stale_never_silently_dropped() -> None:
    state, store = fresh()
    first, changed = make(), later(45, casualties={"killed": 3}, description="Corrected figures.")
    decisions = decide_all(state, [first, changed])
    assert [outcome(d) for d in decisions] == [ACCEPTED, ("stale", None, None)]
    assert decisions[1].revises == 1
    # The stored entry is still the first report's.
    assert "\x1fr-1" in store[identity_key(first)]
    assert store[identity_key(first)].startswith(f"{T0.timestamp():.0f}")


# --- revisions and retractions (docs/reports.md, "Revisions and retractions") ------------------------


def test_a_higher_revision_replaces_and_each_revision_repeats_as_a_duplicate() -> None:
    state, _ = fresh()
    one, two = make(), make(revision=2, casualties={"killed": 2, "injured": 1})
    three = make(revision=3, status="retracted", retraction_reason="double-counted")
    decisions = decide_all(state, [one, two, two, one, three, three])
    assert [(d.outcome, d.rule, d.revises) for d in decisions] == [
        ("accepted", None, None),
        ("accepted", None, 1),
        ("duplicate", "exact", None),  # revision 2 again, the same
        ("duplicate", "exact", None),  # revision 1 again, as it was accepted: a late re-send, no harm
        ("accepted", None, 2),
        ("duplicate", "exact", None),
    ]
    assert all(d.duplicate_of == "r-1" for d in decisions if d.outcome == "duplicate")


@pytest.mark.parametrize("revision", [1, 2])
def test_an_equal_or_lower_revision_with_other_content_is_stale(revision: int) -> None:
    state, _ = fresh()
    decide_all(state, [make(), make(revision=2, casualties={"killed": 4})])
    ruled = state.decide(make(revision=revision, description="Something else."))
    assert (ruled.outcome, ruled.revises) == ("stale", 2)


def test_a_revision_resubmitted_under_a_new_id_is_still_a_duplicate() -> None:
    state, _ = fresh()
    two = make(revision=2, casualties={"killed": 5})
    again = make(report_id="r-1-again", revision=2, casualties={"killed": 5})
    decisions = decide_all(state, [make(), two, again])
    assert outcome(decisions[2]) == ("duplicate", "resubmission", "r-1")


def test_a_revision_keeps_the_entry_alive_to_its_newest_observed_at() -> None:
    state, store = fresh(retention=1 * HOUR)
    decide_all(state, [make(), later(50, revision=2)])
    decide_all(state, [later(100, report_id="other")])  # the watermark moves 100 minutes on
    # revision 1's observed_at is past retention, revision 2's is not: the report is still known
    assert outcome(state.decide(later(50, revision=2))) == ("duplicate", "exact", "r-1")


def test_an_entry_from_before_revisions_reads_as_revision_one(tmp_path: Any) -> None:
    state, store = fresh()
    store.apply({identity_key(make()): f"{T0.timestamp():.0f}\x1fr-1\x1f0:12"})  # the old format
    assert outcome(state.decide(make(description="whatever it said"))) == ("duplicate", "exact", "r-1")
    assert state.decide(make(revision=2)).outcome == "accepted"


def test_decisions_survive_in_the_store_across_states() -> None:
    state, store = fresh()
    decide_all(state, [make()])
    again = DedupState(store, 24 * HOUR)
    assert outcome(again.decide(make())) == ("duplicate", "exact", "r-1")


# --- resubmission rule -------------------------------------------------------------------------------

SAME_CONTENT: dict[str, dict[str, Any]] = {
    "same-minute-other-second": {"observed_at": "2025-05-10T12:10:59Z"},
    "same-instant-other-offset": {"observed_at": "2025-05-10T08:10:00-04:00"},
    "coordinates-on-the-same-grid-cell": {"location": {"lat": 33.7704, "lon": 74.0896}},
    "other-place-name-and-precision": {
        "location": {"lat": 33.77, "lon": 74.09, "place": "KG", "precision_km": 5}
    },
    "description-spacing-and-case": {"description": "  UNPROVOKED   small-arms fire\n\ton forward POSTS. "},
    "other-evidence-and-reported_at": {"evidence": [], "reported_at": "2025-05-10T13:00:00Z"},
    "other-extensions": {"extensions": {"desk": "night"}},
}


@pytest.mark.parametrize("changes", SAME_CONTENT.values(), ids=SAME_CONTENT.keys())
def test_resubmission_under_a_new_id_is_a_duplicate(changes: dict[str, Any]) -> None:
    state, _ = fresh()
    decisions = decide_all(state, [make(), make(report_id="r-1-resent", **changes)])
    assert [outcome(d) for d in decisions] == [ACCEPTED, ("duplicate", "resubmission", "r-1")]


def test_sector_only_resubmission_is_a_duplicate_whatever_the_case() -> None:
    state, _ = fresh()
    first = make(location={"sector": "Poonch"})
    again = make(report_id="r-2", location={"sector": "POONCH", "place": "Krishna Ghati"})
    decisions = decide_all(state, [first, again])
    assert [outcome(d) for d in decisions] == [ACCEPTED, ("duplicate", "resubmission", "r-1")]


DIFFERENT_CONTENT: dict[str, dict[str, Any]] = {
    "next-minute": {"observed_at": "2025-05-10T12:11:00Z"},
    "an-hour-later": {"observed_at": "2025-05-10T13:10:00Z"},
    "about-1-km-north": {"location": {"lat": 33.779, "lon": 74.09}},
    "about-1-km-east": {"location": {"lat": 33.77, "lon": 74.1008}},
    "sector-instead-of-coordinates": {"location": {"sector": "Poonch"}},
    "more-killed": {"casualties": {"killed": 1, "injured": 1, "civilian": False}},
    "other-injured": {"casualties": {"killed": 0, "injured": 2, "civilian": False}},
    "killed-absent-instead-of-zero": {"casualties": {"injured": 1, "civilian": False}},
    "no-casualties-at-all": {"casualties": None},
    "civilian-flag": {"casualties": {"killed": 0, "injured": 1, "civilian": True}},
    "other-description": {"description": "Mortar fire on forward posts."},
    "no-description": {"description": None},
    "other-violation-type": {"violation_type": "sniper"},
    "other-ceasefire": {"ceasefire_id": "il-lb-2024-11-27"},
}


@pytest.mark.parametrize("changes", DIFFERENT_CONTENT.values(), ids=DIFFERENT_CONTENT.keys())
def test_changed_content_under_a_new_id_is_not_a_duplicate(changes: dict[str, Any]) -> None:
    state, _ = fresh()
    decisions = decide_all(state, [make(), make(report_id="r-2", **changes)])
    assert [outcome(d) for d in decisions] == [ACCEPTED, ACCEPTED]


def test_killed_zero_and_absent_fingerprint_differently() -> None:
    zero = make(casualties={"killed": 0})
    absent = make(casualties={})
    assert content_fingerprint(zero) != content_fingerprint(absent)


@pytest.mark.parametrize("changes", [{}, {"report_id": "r-2"}], ids=["same-id", "new-id"])
def test_reports_from_different_sources_are_never_duplicates(changes: dict[str, Any]) -> None:
    state, _ = fresh()
    decisions = decide_all(state, [make(), make(source="in.bsf", **changes)])
    assert [outcome(d) for d in decisions] == [ACCEPTED, ACCEPTED]


# --- staging and commit ------------------------------------------------------------------------------


def test_nothing_reaches_the_store_before_commit() -> None:
    state, store = fresh()
    assert state.decide(make()) == Decision("accepted")
    assert store == {}
    state.commit()
    assert set(store) == {identity_key(make()), content_fingerprint(make()), WATERMARK_KEY}
    assert state.pending == {}


@pytest.mark.parametrize(
    ("repeat", "rule"),
    [(make(), "exact"), (make(report_id="r-2"), "resubmission")],
    ids=["exact", "resubmission"],
)
def test_a_repeat_within_the_same_staged_batch_is_caught(repeat: Report, rule: str) -> None:
    state, store = fresh()
    assert state.decide(make()).outcome == "accepted"
    assert outcome(state.decide(repeat)) == ("duplicate", rule, "r-1")
    assert store == {}


def test_a_batch_lost_before_commit_is_decided_again_after_a_restart() -> None:
    state, store = fresh()
    state.decide(make())  # ... and the worker dies before the outputs are acknowledged
    again = DedupState(store, 24 * HOUR)
    assert again.decide(make()).outcome == "accepted"


def test_commit_persists_the_watermark_and_a_new_state_reads_it() -> None:
    state, store = fresh()
    decide_all(state, [later(60), later(0, report_id="late")])
    assert float(store[WATERMARK_KEY]) == (T0 + timedelta(minutes=60)).timestamp()
    assert DedupState(store, 24 * HOUR).watermark == state.watermark


# --- retention by event time -------------------------------------------------------------------------


def test_an_entry_within_retention_behind_the_watermark_still_counts() -> None:
    state, _ = fresh(retention=HOUR)
    decide_all(state, [make(), later(60, report_id="other", violation_type="mortar")])
    assert outcome(state.decide(make())) == ("duplicate", "exact", "r-1")
    assert outcome(state.decide(make(report_id="r-1-resent"))) == ("duplicate", "resubmission", "r-1")


def test_a_report_older_than_retention_behind_the_watermark_is_too_old_never_accepted_again() -> None:
    # Measured before: the same old report posted three times was accepted three times.
    state, _ = fresh(retention=HOUR)
    decide_all(state, [make(), later(60 + 1 / 60, report_id="other", violation_type="mortar")])
    assert state.decide(make()).outcome == "too_old"
    assert state.decide(make(report_id="r-1-resent")).outcome == "too_old"
    assert state.decide(later(1 / 60, report_id="just-inside")).outcome == "accepted"


def test_an_old_report_first_in_its_partition_is_judged() -> None:
    state, _ = fresh(retention=HOUR)
    assert [d.outcome for d in decide_all(state, [later(-600), later(-600)])] == ["accepted", "duplicate"]


# --- re-delivery: the same record again is not a duplicate of itself ------------------------------


def test_the_accepted_record_delivered_again_is_a_redelivery_not_a_duplicate() -> None:
    state, store = fresh()
    assert state.decide(make(), "2:1187").outcome == "accepted"
    assert state.decide(make(), "2:1187").outcome == "redelivered"  # in the same batch
    state.commit()
    again = DedupState(store, 24 * HOUR)  # after a crash, from the stored entries
    assert again.decide(make(), "2:1187").outcome == "redelivered"
    assert outcome(again.decide(make(), "0:5")) == ("duplicate", "exact", "r-1")  # a repeat posted anew
    assert again.decide(make(report_id="r-1b"), "2:1187").outcome == "redelivered"


def test_a_duplicate_or_too_old_record_delivered_again_is_a_redelivery() -> None:
    state, store = fresh(retention=HOUR)
    decide_all(state, [make()], origins=["0:1"])
    assert decide_all(state, [make(), later(120, report_id="new")], origins=["0:2", "0:3"])[0].outcome == "duplicate"
    assert decide_all(state, [make(report_id="old")], origins=["0:4"])[0].outcome == "too_old"
    again = DedupState(store, HOUR)
    redelivered = decide_all(again, [make(), make(report_id="old"), later(120, report_id="new")], ["0:2", "0:4", "0:3"])
    assert [d.outcome for d in redelivered] == ["redelivered"] * 3


def test_entries_without_an_origin_still_decide() -> None:
    store = MemoryStore({identity_key(make()): f"{T0.timestamp():.0f}\x1fr-1"})  # as written before origins were kept
    assert outcome(DedupState(store, HOUR).decide(make(), "0:9")) == ("duplicate", "exact", "r-1")


def test_watermark_never_moves_back_for_a_late_report() -> None:
    state, _ = fresh()
    decide_all(state, [later(120), later(0, report_id="late")])
    assert state.watermark == (T0 + timedelta(minutes=120)).timestamp()


def _sweep_scenario(state: DedupState) -> None:
    """r-1 at T0 (two keys), r-2 at T0+2h (two keys): with 1 h retention r-1's entries are stale."""
    decide_all(state, [make(), later(120, report_id="r-2", violation_type="mortar")])


def test_expire_deletes_exactly_the_stale_entries() -> None:
    state, store = fresh(retention=HOUR)
    _sweep_scenario(state)
    second = later(120, report_id="r-2", violation_type="mortar")
    kept = {identity_key(second), content_fingerprint(second)}
    assert state.expire() == 2
    assert set(store) == kept | {WATERMARK_KEY}
    assert state.expire() == 0


def test_expire_in_a_scoped_store_leaves_other_scopes_alone() -> None:
    store = MemoryStore()
    # "1/" is a prefix of neither "11/" nor "2/": a sweep of partition 1 must not touch partition 11.
    states = {scope: DedupState(store, HOUR, scope) for scope in ("1/", "11/", "2/")}
    decide_all(states["11/"], [make()])
    decide_all(states["2/"], [make()])
    _sweep_scenario(states["1/"])
    others = {key: value for key, value in store.items() if not key.startswith("1/")}
    assert len(others) == 6  # two entries and a watermark for each of "11/" and "2/"
    assert states["1/"].expire() == 2
    assert {key: value for key, value in store.items() if not key.startswith("1/")} == others
    assert sorted(key for key in store if key.startswith("1/")) == sorted(
        [
            "1/" + identity_key(later(120, report_id="r-2")),
            "1/" + content_fingerprint(later(120, violation_type="mortar")),
            "1/" + WATERMARK_KEY,
        ]
    )


def test_scopes_decide_independently() -> None:
    store = MemoryStore()
    one, two = DedupState(store, HOUR, "0/"), DedupState(store, HOUR, "1/")
    assert decide_all(one, [make()])[0].outcome == "accepted"
    assert decide_all(two, [make()])[0].outcome == "accepted"
    decide_all(one, [later(600, report_id="r-9", violation_type="mortar")])
    assert DedupState(store, HOUR, "1/").watermark == T0.timestamp()


def _stream() -> list[Report]:
    """Reports in arrival order, with repeats that fall inside and outside a 1 h retention."""
    reports = []
    for step in range(12):
        minutes = step * 20
        kind = "mortar" if step % 2 else "sniper"
        reports.append(later(minutes, report_id=f"r-{step}", violation_type=kind))
        reports.append(later(minutes, report_id=f"r-{step}", violation_type=kind))  # exact repeat
        reports.append(later(minutes, report_id=f"r-{step}"))  # the same revision, other content: stale
        reports.append(make(report_id=f"again-{step}"))  # resubmission of the first report, ever later
        reports.append(later(minutes - 90, report_id=f"late-{step}"))  # late, some beyond retention
    return reports


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_decisions_do_not_depend_on_when_expire_ran(batch: int) -> None:
    swept_store, never_store = MemoryStore(), MemoryStore()
    swept_decisions: list[Decision] = []
    never_decisions: list[Decision] = []
    reports = _stream()
    for start in range(0, len(reports), batch):
        chunk = reports[start : start + batch]
        swept = DedupState(swept_store, HOUR, "3/")
        swept_decisions += decide_all(swept, chunk)
        swept.expire()
        never_decisions += decide_all(DedupState(never_store, HOUR, "3/"), chunk)
    assert swept_decisions == never_decisions
    assert {d.rule for d in swept_decisions} == {None, "exact", "resubmission"}
    assert "stale" in {d.outcome for d in swept_decisions}
    assert len(swept_store) < len(never_store)  # the sweep did delete something


def test_a_retraction_is_final() -> None:
    state, _ = fresh()
    retraction = make(revision=2, status="retracted")
    decisions = decide_all(state, [make(), retraction, retraction, make(revision=3, casualties={"killed": 2})])
    assert [(d.outcome, d.revises) for d in decisions] == [("accepted", None), ("accepted", 1), ("duplicate", None), ("final", 2)]
