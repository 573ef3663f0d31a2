"""Receipts (services/ingest/receipts.py and their storage in DedupState): every ruling on a report
leaves its standing right, and a plain acceptance costs no entry of its own."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.ingest import Origin
from schemas.receipt import Problem
from schemas.report import Report
from services.ingest import receipts
from services.ingest.dedup import DedupState
from services.ingest.persist import receipt_entry_key
from services.store import MemoryStore
from tests.support.reports import report

NOW = datetime(2026, 12, 7, tzinfo=UTC)
STALE = [Problem(reason="stale_revision", path="$.revision", message="not newer")]


def make(**overrides: object) -> Report:
    return Report.model_validate(report(**overrides))


def rule(state: DedupState, item: Report, offset: int) -> None:
    """What the dedup agent does for one report: decide, then file the receipt of the ruling."""
    origin = Origin(partition=0, offset=offset)
    decision = state.decide(item, f"0:{offset}")
    previous = state.receipt(item.source, item.report_id, item.ceasefire_id)
    if decision.outcome == "accepted":
        receipt = receipts.accepted(previous, item, origin, NOW)
    elif decision.outcome == "duplicate" and decision.rule == "exact":
        receipt = receipts.repeated(previous, item, origin, NOW)
    elif decision.outcome == "duplicate":
        receipt = receipts.resubmitted(previous, item, decision.duplicate_of or "", origin, NOW)
    else:
        receipt = receipts.rejected(previous, item.identity, "stale_revision", STALE, origin, NOW, item.ceasefire_id, item.revision)
    state.file_receipt(receipt, item.observed_at.timestamp())
    state.commit()


def test_a_plain_acceptance_is_not_stored_and_reads_back_from_the_identity_entry() -> None:
    store = MemoryStore()
    state = DedupState(store, 3600 * 24)
    rule(state, make(), 0)
    assert receipt_entry_key("in.army", "r-1") not in store
    standing = state.receipt("in.army", "r-1", "in-pk-2025-05-10")
    assert standing is not None
    assert (standing.outcome, standing.revision, standing.origin) == ("accepted", 1, Origin(partition=0, offset=0))
    rule(state, make(revision=2, casualties={"killed": 2}), 1)
    assert state.receipt("in.army", "r-1") is not None and state.receipt("in.army", "r-1").revision == 2  # type: ignore[union-attr]


def test_repeats_and_rejections_are_kept_across_revisions() -> None:
    store = MemoryStore()
    state = DedupState(store, 3600 * 24)
    rule(state, make(), 0)
    rule(state, make(), 1)  # repeated
    rule(state, make(description="other words"), 2)  # revision 1 again, other content: stale
    rule(state, make(revision=2, casualties={"killed": 2}), 3)
    standing = state.receipt("in.army", "r-1")
    assert standing is not None
    assert (standing.outcome, standing.revision, standing.repeats) == ("accepted", 2, 1)
    assert [(r.reason, r.revision, r.origin.offset) for r in standing.rejections] == [("stale_revision", 1, 2)]


def test_a_record_rejected_twice_at_one_origin_is_noted_once() -> None:
    first = receipts.rejected(None, ("in.army", "x"), "schema", STALE, Origin(partition=0, offset=5), NOW)
    assert receipts.rejected(first, ("in.army", "x"), "schema", STALE, Origin(partition=0, offset=5), NOW) is first
    later = receipts.rejected(first, ("in.army", "x"), "schema", STALE, Origin(partition=0, offset=6), NOW)
    assert len(later.rejections) == 2 and later.outcome == "dead_lettered"


def test_a_stored_standing_that_no_longer_holds_is_deleted() -> None:
    store = MemoryStore()
    state = DedupState(store, 3600 * 24)
    rule(state, make(), 0)
    rule(state, make(report_id="again"), 1)  # a resubmission: its receipt says duplicate, and is stored
    assert state.receipt("in.army", "again").outcome == "duplicate"  # type: ignore[union-attr]
    assert receipt_entry_key("in.army", "again") in store
    rule(state, make(report_id="again", observed_at="2025-05-10T19:40:00+05:30"), 2)  # now its own report
    assert receipt_entry_key("in.army", "again") not in store
    assert state.receipt("in.army", "again").outcome == "accepted"  # type: ignore[union-attr]
