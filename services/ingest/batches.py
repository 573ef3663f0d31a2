"""The internal batch records between the ingest agents and to correlate: where a report goes, and how
reports and marks are packed into records (schemas/ingest.py has their models)."""

from __future__ import annotations

import zlib

from services.runtime.codec import pack

ORIGIN_HEADER = "ceasefire.origin"  # on accepted reports: `partition:offset` of the record on the ingest topic


def source_partition(source: str, partitions: int) -> int:
    """Stable across processes and restarts (unlike Python's salted `hash`)."""
    return zlib.crc32(source.encode()) % partitions


MARKS_KEY = "marks\x1f"  # + dedup partition, in the dedup table (outside the partition's scope): its upstream marks


def chunk_batches(items: list[bytes], tail: bytes = b"") -> list[bytes]:
    """Join encoded reports into batch records of at most ~MAX_BATCH_BYTES each; `tail` (the fields
    after `reports`, e.g. `,"progress":{…}`) goes on the last, which exists even without reports."""
    runs = [run for run in pack(items) if run] or [[]]
    last = len(runs) - 1
    return [b'{"reports":[' + b",".join(run) + b"]" + (tail if n == last else b"") + b"}" for n, run in enumerate(runs)]
