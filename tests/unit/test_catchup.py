"""The catch-up after a torn write (services/correlate/catchup.py): rebuilt records are held back until
one says what was published; a replay that never gets there publishes its newest once event time
passes the torn batch; other incidents pass untouched."""

from __future__ import annotations

from services.correlate.catchup import CatchUp, content, record_content, taken_at
from tests.support.incidents import incident

UNTIL_US = 1_000


def test_a_rebuild_reaching_the_published_content_publishes_nothing() -> None:
    published = incident("inc-a", 0, version=4, status="mutual")
    catch_up = CatchUp()
    catch_up.expect("inc-a", record_content(published), UNTIL_US)
    rebuilt = [incident("inc-a", 0, version=5), incident("inc-a", 0, version=6, status="mutual")]
    other = incident("inc-b", 0)
    assert catch_up.passed([rebuilt[0], other]) == [other]
    assert catch_up.passed(rebuilt[1:]) == []
    assert not catch_up
    later = incident("inc-a", 1, version=7, status="corroborated")
    assert catch_up.passed([later]) == [later]
    assert catch_up.overdue(UNTIL_US + 1) == []


def test_a_replay_that_differs_publishes_its_newest_once_event_time_has_passed() -> None:
    catch_up = CatchUp()
    catch_up.expect("inc-a", content([("un.unmogip", "x", 1)], None), UNTIL_US)
    held = [incident("inc-a", 0, version=5), incident("inc-a", 0, version=6, status="mutual")]
    assert catch_up.passed(held) == []
    assert catch_up.overdue(UNTIL_US) == []  # not past the torn batch yet
    assert catch_up.overdue(UNTIL_US + 1) == [held[1]]
    assert catch_up.overdue(UNTIL_US + 2) == []
    assert not catch_up


def test_content_tells_merges_revisions_and_members_apart() -> None:
    assert content([("a", "1", 1), ("b", "2", 1)], None) == content([("b", "2", 1), ("a", "1", 1)], None)
    assert content([("a", "1", 1)], None) != content([("a", "1", 2)], None)
    assert content([("a", "1", 1)], "inc-x") == content([], "inc-x") != content([], "inc-y")
    merged = incident("inc-a", 0, version=2, status="merged", merged_into="inc-x")
    assert record_content(merged) == content([], "inc-x")


def test_records_that_may_not_have_gone_out_are_published_once_the_rebuild_reaches_them() -> None:
    """A batch with every reservation stored and no `~published`: the record reaching the content goes
    out (a new version saying the same, or the first to say it); the history before it does not."""
    published = incident("inc-a", 0, version=4, status="mutual")
    catch_up = CatchUp()
    catch_up.expect("inc-a", record_content(published), UNTIL_US, announce=True)
    rebuilt = [incident("inc-a", 0, version=5), incident("inc-a", 0, version=6, status="mutual")]
    assert catch_up.passed(rebuilt[:1]) == []
    assert catch_up.passed(rebuilt[1:]) == [rebuilt[1]]
    assert not catch_up
    assert catch_up.overdue(UNTIL_US + 1) == []


def test_a_replay_that_is_the_batch_again_goes_out_in_the_order_made_under_the_reserved_versions() -> None:
    """Every reservation stored, the records never out: the replay's records of `inc-a` go out under the
    versions its batch reserved (v3, v4 after v2), and records of other incidents made meanwhile wait
    behind them, so the alert stage takes everything in the order and at the event time it was made;
    the watermark sent downstream waits at the first record held back."""
    published = incident("inc-a", 0, version=4, status="mutual")
    catch_up = CatchUp()
    catch_up.expect("inc-a", record_content(published), UNTIL_US, announce=True, span=(2, 4))
    first, other, reaching = incident("inc-a", 0, version=5), incident("inc-b", 1), incident("inc-a", 0, version=6, status="mutual")
    assert catch_up.passed([first]) == []
    assert catch_up.held_back() == taken_at(first)
    assert catch_up.passed([other]) == []  # made after a record held back: it waits behind it
    out = catch_up.passed([reaching])
    assert [(r.incident_id, r.version) for r in out] == [("inc-a", 3), ("inc-b", other.version), ("inc-a", 4)]
    assert [r.model_copy(update={"version": 0}) for r in out] == [
        r.model_copy(update={"version": 0}) for r in (first, other, reaching)
    ]
    assert not catch_up and catch_up.held_back() is None


def test_a_replay_of_another_length_publishes_only_the_record_reaching_the_content() -> None:
    published = incident("inc-a", 0, version=4, status="mutual")
    catch_up = CatchUp()
    catch_up.expect("inc-a", record_content(published), UNTIL_US, announce=True, span=(1, 4))  # three reserved
    first, other, reaching = incident("inc-a", 0, version=5), incident("inc-b", 1), incident("inc-a", 0, version=6, status="mutual")
    assert catch_up.passed([first, other]) == []
    assert catch_up.passed([reaching]) == [other, reaching]  # above every reserved version: no number reused
