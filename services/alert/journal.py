"""The alert state's journal: one batch's changes, stored before the entries themselves.

A rebuild applies the stored journal over the other entries (`replay`), so a crash that tears a batch's
writes leaves the engine at a batch boundary (docs/alerts.md, "Crash safety"). The journal used to be
one entry whatever the batch. A batch taken from a backlog (64 internal records, 2 MiB) can change
thousands of incidents of one ceasefire: on the benchmark's mix, 2,440 changes and a 1.16 MB entry,
above Apache Kafka's default record limit (`max.message.bytes`, 1,048,588 bytes). The broker refuses
such a changelog record, the stage dies, restarts, takes the same backlog and dies again.

So a journal over `PART_BYTES` is stored as parts `journal␟<n>␟<i>` (n: a number no stored part has)
followed by the head `journal` = `{"parts": [their keys]}`; a smaller one is the head itself, as
before. Written in this order: the parts, the head, the batch's entries, then the deletion of every
part stored before (the previous journal's, and any a crash left without a head). A crash keeps a
prefix of that: without the new head, the old head and its parts are still stored; with it, the new
parts are too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import count

import orjson

JOURNAL = "journal"
PART = JOURNAL + "\x1f"
PART_BYTES = 256 * 1024  # a fourth of the broker's default limit: room for the key and the batch
Changes = dict[str, str | None]


class Journal:
    """The parts an engine has stored, and the number its next parts take."""

    def __init__(self, stored_parts: Iterable[str] = (), next_number: int = 0) -> None:
        self.stored_parts = sorted(stored_parts)
        self.next_number = next_number

    def wrap(self, changes: Changes) -> Changes:
        """`changes` as they are to be stored, in order: the journal first, stale parts last."""
        encoded = orjson.dumps(changes)
        parts: dict[str, str] = {}
        if len(encoded) <= PART_BYTES:
            head = encoded.decode()
        else:
            number = self.next_number
            self.next_number += 1
            for i, chunk in zip(count(), _chunks(changes)):
                parts[f"{PART}{number}\x1f{i}"] = orjson.dumps(chunk).decode()
            head = orjson.dumps({"parts": list(parts)}).decode()
        stale = dict.fromkeys(self.stored_parts)
        self.stored_parts = sorted(parts)
        return {**parts, JOURNAL: head, **changes, **stale}


def replay(persisted: Iterable[tuple[str, str]]) -> tuple[dict[str, str], Journal]:
    """The stored entries with the journal applied over them (the state at the end of the last batch
    whose head was stored, whatever prefix of its other entries a crash kept), and the journal's
    stored parts, which the next batch deletes.

    The head is never deleted: the next batch's replaces it before any other entry of that batch is
    stored, so applying it again changes nothing."""
    entries = dict(persisted)
    head = entries.pop(JOURNAL, None)
    parts = {key: entries.pop(key) for key in [k for k in entries if k.startswith(PART)]}
    numbers = [int(key[len(PART) :].partition("\x1f")[0]) for key in parts]
    journal = Journal(parts, max(numbers, default=-1) + 1)
    if head is not None:
        doc = orjson.loads(head)
        batches = [orjson.loads(parts[key]) for key in doc["parts"]] if "parts" in doc else [doc]
        for changes in batches:
            for key, value in changes.items():
                if value is None:
                    entries.pop(key, None)
                else:
                    entries[key] = value
    return entries, journal


def _chunks(changes: Changes) -> Iterator[Changes]:
    """`changes` cut into runs of at most PART_BYTES encoded (an entry larger than that alone)."""
    run: Changes = {}
    size = 0
    for key, value in changes.items():
        grows = len(orjson.dumps(key)) + len(orjson.dumps(value)) + 2  # exact: the colon and the comma
        if run and size + grows > PART_BYTES:
            yield run
            run, size = {}, 0
        run[key] = value
        size += grows
    if run:
        yield run
