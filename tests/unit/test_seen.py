"""Remembered identities: what is stored, what expires, and that a rebuild from the stored entries
answers the same."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from services.correlate.seen import SEEN_PREFIX, SeenReports, identity_digest

HOUR_US = 3_600_000_000


def test_remembered_identity_is_seen_and_stored_as_a_digest() -> None:
    seen = SeenReports(remember_us=24 * HOUR_US)
    seen.remember(("in.army", "r-1"), 5 * HOUR_US)
    assert ("in.army", "r-1") in seen
    assert ("in.army", "r-2") not in seen
    assert ("pk.army", "r-1") not in seen  # the source is part of the identity
    sets, deletes = seen.take_changes()
    assert sets == {f"{SEEN_PREFIX}{identity_digest(('in.army', 'r-1')).hex()}": str(5 * HOUR_US)}
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
    assert seen.take_changes() == ({}, {f"{SEEN_PREFIX}{identity_digest(('in.army', 'old')).hex()}": None})


def test_identity_remembered_and_expired_between_two_takes_is_only_deleted() -> None:
    seen = SeenReports(remember_us=HOUR_US)
    seen.remember(("in.army", "r-1"), 0)
    seen.expire(3 * HOUR_US)
    sets, deletes = seen.take_changes()
    assert sets == {}
    assert list(deletes) == [f"{SEEN_PREFIX}{identity_digest(('in.army', 'r-1')).hex()}"]


def test_rebuild_from_stored_entries_answers_and_expires_alike() -> None:
    seen = SeenReports(remember_us=10 * HOUR_US)
    keys = [(f"src-{i % 3}", f"report-{i}") for i in range(50)]
    for i, key in enumerate(keys):
        seen.remember(key, i * HOUR_US)
    sets, _ = seen.take_changes()
    rebuilt = SeenReports(remember_us=10 * HOUR_US)
    for entry, value in sets.items():
        rebuilt.restore(entry, value)
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


def test_the_stored_entry_is_the_blake2b_digest_in_hex_as_before() -> None:
    """The entry format did not change with the in-memory layout: stored state stays readable."""
    seen = SeenReports(remember_us=HOUR_US)
    seen.remember(("in.army", "r-1"), 0)
    [entry] = seen.take_changes()[0]
    digest = hashlib.blake2b(b"in.army\x1fr-1", digest_size=16).digest()
    assert entry == SEEN_PREFIX + f"{int.from_bytes(digest, 'big'):032x}"


def test_membership_is_asked_of_the_store_once_the_entries_are_stored() -> None:
    """In the service the identities live in the state's table, not in memory: what the shell has not
    stored yet is answered from the pending changes, the rest by one read of the store."""
    table: dict[str, str] = {}
    reads: list[str] = []

    def stored(entry: str) -> str | None:
        reads.append(entry)
        return table.get(entry)

    seen = SeenReports(remember_us=10 * HOUR_US, stored=stored)
    seen.remember(("in.army", "r-1"), HOUR_US)
    assert ("in.army", "r-1") in seen and not reads  # pending: no read
    sets, _ = seen.take_changes()
    assert ("in.army", "r-1") not in seen  # taken but not stored (the shell stores before the next batch)
    table.update(sets)
    assert ("in.army", "r-1") in seen
    seen.expire(12 * HOUR_US)
    assert ("in.army", "r-1") not in seen  # forgotten, though its entry is not deleted yet
    _, deletes = seen.take_changes()
    assert list(deletes) == list(sets)


Step = tuple[str, int, int]  # ("remember", identity, observed) or ("expire", 0, watermark), in 10 s units


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("remember"), st.integers(0, 40), st.integers(-12, 60)),
            st.tuples(st.just("expire"), st.just(0), st.integers(-12, 90)),
            st.tuples(st.just("take"), st.just(0), st.just(0)),
        ),
        max_size=120,
    ),
    st.integers(1, 24),
)
def test_buckets_expire_exactly_as_a_plain_map_would(steps: list[Step], remember_units: int) -> None:
    """Whatever the order of remembering (late reports, observed times before 1970, the same identity
    again) and of watermarks, the packed per-minute buckets forget exactly what a map of identity →
    observed time, cut at the horizon, forgets; in memory and in a store the shell keeps alike."""
    unit = 10_000_000  # 10 s: six to a bucket, so horizons fall inside buckets and on their records
    remember_us = remember_units * unit
    table: dict[str, str] = {}
    kept_here, in_store = SeenReports(remember_us), SeenReports(remember_us, stored=table.get)
    reference: dict[tuple[str, str], int] = {}
    for kind, who, at in steps:
        key = ("src", f"r-{who}")
        if kind == "remember":
            if key in reference:
                continue  # the correlator remembers only what is not seen: a report held once
            reference[key] = at * unit
            kept_here.remember(key, at * unit)
            in_store.remember(key, at * unit)
        elif kind == "expire":
            reference = {k: v for k, v in reference.items() if v >= at * unit - remember_us}
            kept_here.expire(at * unit)
            in_store.expire(at * unit)
        else:
            kept_here.take_changes()
            sets, deletes = in_store.take_changes()
            table.update(sets)
            for entry in deletes:
                table.pop(entry, None)  # remembered and forgotten between two takes: never stored
        for i in range(41):
            probe = ("src", f"r-{i}")
            assert (probe in kept_here) == (probe in in_store) == (probe in reference), (kind, i)
