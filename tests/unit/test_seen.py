"""Remembered identities: what is stored, what expires, and that a rebuild from the stored entries
answers the same."""

from __future__ import annotations

from services.correlate.seen import SEEN_PREFIX, SeenReports, identity_digest

HOUR_US = 3_600_000_000


def test_remembered_identity_is_seen_and_stored_as_a_digest() -> None:
    seen = SeenReports(remember_us=24 * HOUR_US)
    seen.remember(("in.army", "r-1"), 5 * HOUR_US)
    assert ("in.army", "r-1") in seen
    assert ("in.army", "r-2") not in seen
    assert ("pk.army", "r-1") not in seen  # the source is part of the identity
    sets, deletes = seen.take_changes()
    assert sets == {f"{SEEN_PREFIX}{identity_digest(('in.army', 'r-1')):032x}": str(5 * HOUR_US)}
    assert deletes == {}
    assert seen.take_changes() == ({}, {})  # nothing changed since


def test_identity_expires_once_older_than_the_window_behind_the_watermark() -> None:
    seen = SeenReports(remember_us=24 * HOUR_US)
    seen.remember(("in.army", "old"), 1 * HOUR_US)
    seen.remember(("in.army", "new"), 20 * HOUR_US)
    seen.take_changes()
    seen.expire(25 * HOUR_US)  # horizon 1 h: "old" is not older than it yet
    assert ("in.army", "old") in seen
    seen.expire(26 * HOUR_US)
    assert ("in.army", "old") not in seen
    assert ("in.army", "new") in seen
    assert seen.take_changes() == ({}, {f"{SEEN_PREFIX}{identity_digest(('in.army', 'old')):032x}": None})


def test_identity_remembered_and_expired_between_two_takes_is_only_deleted() -> None:
    seen = SeenReports(remember_us=HOUR_US)
    seen.remember(("in.army", "r-1"), 0)
    seen.expire(3 * HOUR_US)
    sets, deletes = seen.take_changes()
    assert sets == {}
    assert list(deletes) == [f"{SEEN_PREFIX}{identity_digest(('in.army', 'r-1')):032x}"]


def test_rebuild_from_stored_entries_answers_and_expires_alike() -> None:
    seen = SeenReports(remember_us=10 * HOUR_US)
    keys = [(f"src-{i % 3}", f"report-{i}") for i in range(50)]
    for i, key in enumerate(keys):
        seen.remember(key, i * HOUR_US)
    sets, _ = seen.take_changes()
    rebuilt = SeenReports(remember_us=10 * HOUR_US)
    for entry, value in sets.items():
        rebuilt.restore(entry, value)
    assert len(rebuilt) == len(seen) == 50
    assert all(key in rebuilt for key in keys)
    seen.expire(40 * HOUR_US)
    rebuilt.expire(40 * HOUR_US)
    assert [key in rebuilt for key in keys] == [key in seen for key in keys] == [i >= 30 for i in range(50)]
    assert rebuilt.take_changes()[1] == seen.take_changes()[1]


def test_observed_times_before_1970_still_expire_in_order() -> None:
    seen = SeenReports(remember_us=HOUR_US)
    seen.remember(("in.army", "early"), -5 * HOUR_US)
    seen.remember(("in.army", "late"), 0)
    seen.expire(-3 * HOUR_US)
    assert ("in.army", "early") not in seen
    assert ("in.army", "late") in seen
