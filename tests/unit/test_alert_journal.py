"""The alert journal stays under a broker's record limit however many changes one batch makes."""

from __future__ import annotations

import orjson

from services.alert.journal import JOURNAL, PART, PART_BYTES, Journal, replay


def big_batch(n: int = 5_000) -> dict[str, str | None]:
    """~1.3 MB of changes, as a backlog batch of one busy ceasefire makes (its summaries, some deletions)."""
    changes: dict[str, str | None] = {
        f"incident\x1finc-{i:05d}": orjson.dumps({"incident_id": f"inc-{i:05d}", "pad": "x" * 200}).decode()
        for i in range(n)
    }
    changes.update({f"incident\x1fgone-{i}": None for i in range(50)})
    return changes


def test_a_small_journal_is_one_entry_first() -> None:
    changes: dict[str, str | None] = {"watermark": "2025-05-10T12:00:00+00:00", "incident\x1fa": None}
    stored = Journal().wrap(changes)
    assert list(stored) == [JOURNAL, *changes]
    assert orjson.loads(stored[JOURNAL]) == changes


def test_a_large_journal_goes_in_parts_under_the_limit_before_its_head() -> None:
    changes = big_batch()
    assert len(orjson.dumps(changes)) > 1_048_588  # Apache Kafka's default max.message.bytes
    stored = Journal().wrap(changes)
    keys = list(stored)
    head = keys.index(JOURNAL)
    parts = keys[:head]
    assert len(parts) >= 5 and all(key.startswith(PART) for key in parts)
    assert all(len(stored[key].encode()) <= PART_BYTES for key in parts)  # type: ignore[union-attr]
    assert len(stored[JOURNAL].encode()) <= PART_BYTES  # type: ignore[union-attr]
    assert keys[head + 1 :] == list(changes)
    # the head alone completes the batch: none of the entries after it is needed
    entries, _ = replay([(key, value) for key, value in stored.items() if value is not None][: head + 1])
    assert entries == {key: value for key, value in changes.items() if value is not None}


def test_parts_are_numbered_past_any_stored_and_deleted_after_the_next_head() -> None:
    first = Journal().wrap(big_batch())
    torn = list(first.items())[:3]  # a crash after three parts: no head
    _, journal = replay(torn)  # type: ignore[arg-type]
    assert journal.stored_parts == [key for key, _ in torn]
    second = journal.wrap(big_batch())
    fresh = [key for key in second if key.startswith(PART) and second[key] is not None]
    assert not set(fresh) & set(first)  # never a number a stored part has
    assert [key for key, value in second.items() if value is None and key.startswith(PART)] == journal_keys(torn)
    third = journal.wrap({"watermark": "2025-05-11T00:00:00+00:00"})
    assert [key for key, value in third.items() if value is None] == sorted(fresh)


def journal_keys(entries: list[tuple[str, str | None]]) -> list[str]:
    return sorted(key for key, _ in entries)
